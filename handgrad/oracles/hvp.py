"""The hand HVP against double backward of the reference (or the record's ``hvp_reference``),
in float64 and float32, with a random upstream gradient, so that an hvp ignoring dout fails."""

from __future__ import annotations

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import broken, float32_allowance, hand_hvp
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.oracles.numerics.linear_reference import reference_hvp
from handgrad.tolerances import tolerance


def hvp(run: CaseRun) -> None:
    record = run.record
    try:
        v, hv = hand_hvp(run)
    except LinearContractError as exc:
        broken(run, "hvp", exc)
        return
    if record.reference is None and record.hvp_reference is None:
        if run.dtype == "float64":
            run.result("hvp", "(reference)", "skipped",
                       message="no PyTorch reference: the hand hvp is checked by central "
                               "differences of the hand backward (hvp-fd), its symmetry, its "
                               "linearity and the second-order Taylor test")
        return
    try:
        ref = reference_hvp(record, run.inputs, run.dout, v, run.dtype)
        allowance = float32_allowance(
            run, lambda dtype: reference_hvp(record, run.inputs, run.dout, v, dtype), ref)
    except Exception as exc:  # noqa: BLE001 - a broken reference is reported, not raised
        what = "hvp_reference" if record.hvp_reference is not None else "the reference"
        run.result("hvp", "(reference)", "error", kind="reference-error",
                   message=f"double backward of {what} raised {type(exc).__name__} in "
                           f"{run.dtype}: {exc}; fix the PyTorch reference")
        return
    tol = tolerance(run.dtype, "autograd", record.tolerances)
    for key in record.differentiable:
        run.compare("hvp", key, hv[key], ref[key], tol, allowance=allowance.get(key, 0.0))


ORACLE = Oracle("hvp", "the hand hvp", hvp, dtypes=("float64", "float32"),
                wanted=lambda run: run.record.hvp is not None and "hvp" in run.checks,
                fix="the hvp must take (dout, v, cache) and return H v keyed by input")
