"""The autograd oracle: the hand gradients (and the forward's values) against the record's
PyTorch reference differentiated by torch.autograd, in float64 and float32. A record without a
reference gets rows saying what only a reference can check."""

from __future__ import annotations

import dataclasses

import numpy as np

from handgrad.autograd import OutputShapeError, autograd_oracle
from handgrad.caserun import CaseRun
from handgrad.cases import full_dims
from handgrad.contract import raised
from handgrad.coverage import live_fraction
from handgrad.diagnose import diagnose_shape
from handgrad.oracles.base import Oracle
from handgrad.randomness import draws_note
from handgrad.tolerances import tolerance

# Two float32 programs for the same sum (pairwise, blocked, sequential) round differently, by
# up to a few times each other's error; 10 covers that spread.
ROUNDING_MARGIN = 10.0


def reference_checks(run: CaseRun) -> None:
    """The reference's checks of one case: autograd and the forward's values, or, without a
    reference, rows saying what needs one (float64 only)."""
    if run.record.reference is None:
        if run.dtype == "float64":
            _without_reference(run)
    else:
        _autograd(run, set(run.checks))


def _without_reference(run: CaseRun) -> None:
    record = run.record
    run.result("autograd", "(reference)", "skipped",
               message="no PyTorch reference: checked by finite differences, the complex step "
                       "where it applies, the Taylor test and the contract; autograd, the "
                       "forward's values and the float32 values need a reference")
    for key in record.intermediates:
        run.result("autograd", key, "skipped", message=f"the gradient of the intermediate "
                   f"{key!r} can only be checked against a reference's graph")


def _autograd(run: CaseRun, checks: set[str]) -> None:
    record = run.record
    fix = "fix the PyTorch reference (it must run on these inputs in this dtype)"
    try:
        ref_out, ref_grads = run.prepared or autograd_oracle(record, run.inputs, run.dout,
                                                             run.dtype)
    except OutputShapeError as exc:
        _blame_output(run, exc)
        return
    except NotImplementedError as exc:
        kind, message = raised("the PyTorch reference", exc, "")
        run.result("autograd", "(reference)", "error", kind=kind, message=message)
        return
    except Exception as exc:  # noqa: BLE001 - a broken reference is reported, not raised
        run.result("autograd", "(reference)", "error", kind="reference-error",
                   message=f"the PyTorch reference raised {type(exc).__name__} in {run.dtype}: "
                           f"{exc}; {fix}")
        return
    run.ref_grads = ref_grads
    rounding: dict[str, float] = {}
    if run.dtype != "float64":
        try:
            rounding = rounding_of_reference(run, ref_out, ref_grads)
        except Exception as exc:  # noqa: BLE001
            run.result("autograd", "(reference)", "error", kind="reference-error",
                       message=f"the PyTorch reference raised {type(exc).__name__} in float64 "
                               f"on the {run.dtype} inputs (the run that sizes the {run.dtype} "
                               f"rounding allowance): {exc}; {fix}")
            return
    live = live_fraction(ref_grads) if run.dtype == "float64" else {}
    run.compare("forward", "(output)", run.hand.out, ref_out,
                tolerance(run.dtype, "forward", record.tolerances),
                allowance=rounding.get("(output)", 0.0))
    last = run.results[-1] if run.results else None
    note = draws_note(record)
    if note and last is not None and last.check == "forward" and last.status == "fail":
        run.results[-1] = dataclasses.replace(last, message=last.message + note)
    if "autograd" not in checks:
        return
    tol = tolerance(run.dtype, "autograd", record.tolerances)
    for key in (*record.intermediates, *record.differentiable):
        if key in run.hand.grads:
            run.compare("autograd", key, run.hand.grads[key], ref_grads[key], tol,
                        allowance=rounding.get(key, 0.0), live=live.get(key, np.nan))


def _blame_output(run: CaseRun, exc: OutputShapeError) -> None:
    """The forward and the reference disagree on the output's shape: say which one is wrong
    (by the record's declared ``output`` when it has one)."""
    record = run.record
    hand_shape, ref_shape = exc.hand_shape, exc.ref_out.shape
    tol = tolerance(run.dtype, "forward", record.tolerances)
    evidence = diagnose_shape(np.asarray(run.hand.out), exc.ref_out, tol["rtol"], tol["atol"])
    if record.output is not None:
        declared = record.shape_of_symbolic(record.output,
                                            full_dims(record, run.case.dim_map))
        if ref_shape != declared and hand_shape == declared:
            run.result("autograd", "(reference)", "error", kind="reference-error",
                       message=f"the reference returns shape {ref_shape} where the record "
                               f"declares output {declared} (the NumPy forward agrees with "
                               "the declaration): fix the reference")
            return
        blame = (f"the record declares output {declared}: fix the forward"
                 if hand_shape != declared else "")
    else:
        blame = ("fix the forward, or the reference if it is the one that is wrong (declare "
                 "output= on the record to let handgrad tell)")
    run.result("forward", "(output)", "fail", kind="wrong-shape",
               message=f"the NumPy forward returns shape {hand_shape}, the reference "
                       f"{ref_shape}; " + "; ".join(p for p in (blame, evidence) if p))


def rounding_of_reference(run: CaseRun, ref_out, ref_grads) -> dict[str, float]:
    """In float32, ROUNDING_MARGIN times the largest error of the float32 reference against
    float64 autograd on the very same (rounded) inputs, per tensor.

    Where a gradient is a small difference of large terms (a softmax bias gradient summed over
    the batch), float32 loses digits relative to the terms, not to the result; the reference's
    own float32 error measures that loss, and a right hand program rounds within a small
    multiple of it.
    """
    up = np.asarray(run.dout, np.float64)
    exact = {k: (v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v)
             for k, v in run.inputs.items()}
    out64, grads64 = autograd_oracle(run.record, exact, up, "float64")
    spread = {k: float(np.abs(ref_grads[k] - grads64[k]).max(initial=0.0)) for k in grads64}
    spread["(output)"] = float(np.abs(ref_out - out64).max(initial=0.0))
    return {k: ROUNDING_MARGIN * v for k, v in spread.items()}


ORACLE = Oracle("autograd", "the PyTorch reference", reference_checks,
                wanted=lambda run: run.record.reference is None
                or bool({"autograd", "forward"} & run.checks),
                dtypes=("float64", "float32"), guard=False)
