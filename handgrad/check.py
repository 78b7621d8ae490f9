"""Checking one derivation: every oracle on every case, one report. Nothing a derivation does
(raising anywhere, in any dtype, in any oracle) escapes as an exception: it becomes a result
that names the derivation, the case, the check and what to fix."""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterable, Mapping
from contextlib import contextmanager

import numpy as np

from handgrad import contain, oracles, reconcile
from handgrad.autograd import OutputShapeError, autograd_oracle
from handgrad.cases import Case, build_inputs, full_dims, sample_cases, upstream
from handgrad.compare import compare
from handgrad.contract import HandRun, raised, run_hand
from handgrad.coverage import coverage, live_fraction
from handgrad.diagnose import diagnose, diagnose_shape
from handgrad.discovery import find
from handgrad.localise import localise, smallest_failing
from handgrad.record import CHECKS, Derivation
from handgrad.report import Report, Result, remember_record
from handgrad.state import explicit_state
from handgrad.tolerances import tolerance

# Two float32 programs for the same sum (pairwise, blocked, sequential) round differently, by
# up to a few times each other's error; 10 covers that spread.
ROUNDING_MARGIN = 10.0
KINK_REDRAWS = 50
# Data redraws looking for a case where every gradient is exercised (non-zero somewhere).
LIVE_REDRAWS = 5


@dataclasses.dataclass
class CaseRun:
    """Everything one case needs, built once; each oracle reads from it."""

    record: Derivation
    case: Case
    dtype: str
    inputs: dict[str, np.ndarray]
    dout: np.ndarray
    hand: HandRun
    results: list[Result] = dataclasses.field(default_factory=list)
    ref_grads: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    evaluate: object = None
    sigma: float | None = None  # rounding noise of S at the point (oracles._noise)
    centre: tuple[float, float] | None = None  # (S, sum |terms|) at the point
    kinks: dict[str, oracles.KinkSet] = dataclasses.field(default_factory=dict)
    taylor: object = None
    prepared: tuple = ()  # (out, grads) of float64 autograd, when already computed

    def result(self, check: str, tensor: str, status: str, **fields) -> Result:
        r = Result(derivation=self.record.name, case=self.case.describe(),
                   data_seed=self.case.data_seed, dtype=self.dtype, check=check, tensor=tensor,
                   status=status, tag=self.record.tags.get(tensor, ""), **fields)
        self.results.append(r)
        return r

    def compare(self, check: str, key: str, hand: np.ndarray, ref: np.ndarray,
                tol: Mapping[str, float], allowance=0.0, **fields) -> Result:
        hand = np.asarray(hand)
        ref = np.asarray(ref)
        if hand.shape != ref.shape:
            return self.result(check, key, "fail", kind="wrong-shape",
                               message=diagnose_shape(hand, ref, tol["rtol"], tol["atol"]),
                               **fields)
        c = compare(hand, ref, tol["rtol"], tol["atol"], allowance=allowance)
        kind, message = "", ""
        if not c.passed:
            axes = self.record.inputs.get(key) or self.record.intermediate_shapes.get(key)
            kind, message = diagnose(hand, ref, tol["rtol"], tol["atol"],
                                     full_dims(self.record, self.case.dim_map), axes)
        return self.result(check, key, "pass" if c.passed else "fail", kind=kind,
                           message=message, max_abs=c.max_abs, max_rel=c.max_rel,
                           worst_index=c.worst_index, hand_value=c.hand_value,
                           ref_value=c.ref_value, rtol=c.rtol, atol=c.atol, **fields)


@contextmanager
def guarded(run: CaseRun, check: str, tensor: str, what: str, fix: str,
            kind: str = "exception"):
    """Any exception inside becomes an error result naming the check and the fix."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - a derivation that raises is a result
        if not contain.from_code(exc):
            raise
        run.result(check, tensor, "error", kind=kind,
                   message=f"{what} raised {type(exc).__name__}: {exc}; {fix}")


def resolve(record_or_name: Derivation | str) -> Derivation:
    return record_or_name if isinstance(record_or_name, Derivation) else find(record_or_name)


def cases_for(record: Derivation, seed: int = 0, cases: int = 4, *,
              dims: Mapping[str, int] | None = None, data_seed: int | None = None) -> list[Case]:
    """The cases to check: ``cases`` sampled ones, or the one case ``dims``/``data_seed``."""
    if dims is not None:
        lows = {k: lo for k, (lo, _) in record.dims.items()}
        return [Case.of({**lows, **dims}, 0 if data_seed is None else data_seed, "given")]
    return sample_cases(record, seed, cases)


def assemble(record: Derivation, results: list[Result]) -> Report:
    """The report of a record from the results of its cases: coverage rows and, when it is
    rejected, where it goes wrong (see :func:`handgrad.localise.localise`)."""
    report = Report(record.name, record.expect, record.erratum, record.doc,
                    expect_kind=record.expect_kind, results=list(results))
    remember_record(report, record)
    report.results += coverage(record, report.results)
    if report.failures and report.rejected:
        report.diagnoses += localise(record, report)
    return report


def check(record_or_name: Derivation | str, seed: int = 0, cases: int = 4, *,
          dims: Mapping[str, int] | None = None, data_seed: int | None = None,
          checks: Iterable[str] = CHECKS, shrink: bool = True) -> Report:
    """Check one derivation on ``cases`` sampled cases (or the one case ``dims``/``data_seed``).

    Returns a :class:`Report`; ``report.passed`` says whether the hand gradients are right and
    every one of them was exercised.
    """
    record = resolve(record_or_name)
    checks = tuple(checks)
    try:
        todo = cases_for(record, seed, cases, dims=dims, data_seed=data_seed)
    except Exception as exc:  # noqa: BLE001
        return assemble(record, [Result(record.name, "", 0, "float64", "contract", "(cases)",
                                        "error", kind="exception",
                                        message=f"sampling cases raised {type(exc).__name__}: "
                                                f"{exc}; check dims and derive")])
    report = assemble(record, [r for case in todo for r in check_case(record, case, checks)])
    if shrink and report.failures and report.rejected:
        report.diagnoses += smallest_failing(record, report, check_case)
    return report


@explicit_state()
def check_case(record: Derivation, case: Case, checks: Iterable[str] = CHECKS) -> list[Result]:
    """All checks of one case, float64 then float32. Never raises."""
    contain.watch_interrupts()
    try:
        return _check_case(record, case, set(checks))
    except BaseException as exc:  # noqa: BLE001 - the last net: report, never crash the suite
        if not contain.from_code(exc):
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1]
        if not isinstance(exc, Exception):  # sys.exit() or KeyboardInterrupt in user code
            return [Result(record.name, case.describe(), case.data_seed, "float64", "contract",
                           "(code)", "error", kind="exception",
                           message=f"the code under test {contain.escaped(exc)} (at "
                                   f"{where.filename}:{where.lineno}); it must return, not "
                                   "end the process")]
        return [Result(record.name, case.describe(), case.data_seed, "float64", "contract",
                       "(engine)", "error", kind="exception",
                       message=f"checking raised {type(exc).__name__}: {exc} (at "
                               f"{where.filename}:{where.lineno}); please report it with the "
                               "reproduce command")]


def _check_case(record: Derivation, case: Case, checks: set[str]) -> list[Result]:
    early: list[Result] = []
    case, prepared = _choose_data(record, case, early)
    dtypes = ["float64"] + (["float32"] if ("autograd" in checks or record.reference is None)
                            and "float32" not in record.skip else [])
    results = list(early)
    for dtype in dtypes:
        run, error = _start(record, case, dtype)
        if run is not None and dtype == "float64":
            run.prepared = prepared
        if run is None:
            results.append(error)
            break
        for tensor, kind, message, status in run.hand.problems:
            run.result("contract", tensor, status, kind=kind, message=message)
        if run.hand.fatal:
            results += run.results
            break
        _checks_of(run, checks - set(record.skip))
        if dtype == "float64":
            run64 = run
            for name in sorted((checks | {"float32"}) & set(record.skip)):
                run.result(name, "(all)", "skipped", message=record.skip[name])
        else:
            reconcile.kinks(run, run64)
        if dtype == "float64":
            reconcile.kinks(run, run)
            reconcile.taylor(run)
        results += run.results
    return results


def _start(record: Derivation, case: Case, dtype: str) -> tuple[CaseRun | None, Result | None]:
    def error(what: str, exc: Exception, fix: str) -> tuple[None, Result]:
        kind, message = raised(what, exc, fix)
        return None, Result(record.name, case.describe(), case.data_seed, dtype, "contract",
                            "(inputs)", "error", kind=kind, message=message)

    try:
        inputs = build_inputs(record, case, dtype)
    except Exception as exc:  # noqa: BLE001
        return error("sampling inputs", exc, "check samplers, dims and derive")
    with np.errstate(all="ignore"):
        hand = run_hand(record, inputs, lambda shape: upstream(shape, case, dtype), dtype)
    return CaseRun(record, case, dtype, inputs, hand.dout, hand), None


def _choose_data(record: Derivation, case: Case, problems: list[Result]) -> tuple[Case, tuple]:
    """The first data seed from ``case``'s on whose point every declared kink is
    ``kink_margin`` away and every gradient is exercised (its reference is non-zero somewhere);
    failing that, the seed that exercises the most. Returns it with the float64 autograd
    result computed on the way (reused by the autograd check). What fails here is reported by
    the checks themselves, except a raising ``kink_distance``, reported here."""
    needed = record.grad_keys - set(record.zero_grads)
    best, best_live, tried = (case, ()), -1, 0
    for i in range(KINK_REDRAWS):
        candidate = dataclasses.replace(case, data_seed=case.data_seed + i)
        try:
            inputs = build_inputs(record, candidate)
            out, cache = record.forward(**{k: v.copy() for k, v in inputs.items()})
        except Exception:  # noqa: BLE001 - _start reports it, with its context
            return candidate, ()
        if record.reference is None:
            return candidate, ()
        if record.kink_distance is not None:
            try:
                distance = float(record.kink_distance(cache))
            except Exception as exc:  # noqa: BLE001
                problems.append(Result(record.name, candidate.describe(), candidate.data_seed,
                                       "float64", "contract", "(kink_distance)", "error",
                                       kind="exception",
                                       message=f"kink_distance raised {type(exc).__name__}: "
                                               f"{exc}; it takes the forward's cache and returns "
                                               "the distance to the nearest kink"))
                return candidate, ()
            if distance < record.kink_margin:
                continue
        try:
            prepared = autograd_oracle(record, inputs, upstream(np.shape(out), candidate),
                                       "float64")
        except Exception:  # noqa: BLE001 - the autograd check reports it
            return candidate, ()
        live = {k for k, f in live_fraction(prepared[1]).items() if f > 0}
        if needed <= live:
            return candidate, prepared
        if len(live & needed) > best_live:
            best, best_live = (candidate, prepared), len(live & needed)
        tried += 1
        if tried >= LIVE_REDRAWS:
            break
    return best


def _checks_of(run: CaseRun, checks: set[str]) -> None:
    record = run.record
    if record.reference is None:
        if run.dtype == "float64":
            _without_reference(run)
    elif "autograd" in checks or "forward" in checks:
        _autograd(run, checks)
    if run.dtype != "float64":
        return
    stages = (("fd", oracles.finite_differences, "finite differences"),
              ("complex-step", oracles.complex_step, "the complex step"),
              ("taylor", oracles.taylor, "the Taylor test"),
              ("descent", oracles.descent, "the descent step"))
    for name, stage, what in stages:
        if name not in checks:
            continue
        if name == "complex-step" and not record.complex_step:
            continue
        if name == "descent" and record.update is None:
            continue
        fix = ("fix the update rule" if name == "descent"
               else "the forward must run on perturbed float64 inputs")
        with guarded(run, name, "(all)", f"{what} (evaluating the forward)", fix), \
                np.errstate(all="ignore"):
            stage(run)


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
            rounding = _rounding_of_reference(run, ref_out, ref_grads)
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


def _rounding_of_reference(run: CaseRun, ref_out, ref_grads) -> dict[str, float]:
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
