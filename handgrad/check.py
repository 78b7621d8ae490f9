"""Checking one derivation: every oracle on every case, one report. Nothing a derivation does
(raising anywhere, in any dtype, in any oracle) escapes as an exception: it becomes a result
that names the derivation, the case, the check and what to fix."""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterable, Mapping

import numpy as np

from handgrad import contain, reconcile, transcription
from handgrad.autograd import autograd_oracle
from handgrad.blame import output_shape_behind_exception
from handgrad.caserun import CaseRun, guarded
from handgrad.cases import Case, build_inputs, sample_cases, upstream
from handgrad.contract import raised, run_hand
from handgrad.coverage import coverage, live_fraction
from handgrad.discovery import find
from handgrad.localise import localise, smallest_failing
from handgrad.oracles import REGISTRY, equation
from handgrad.randomness import caller_state_kept, seeded_per_call
from handgrad.record import CHECKS, Derivation
from handgrad.report import Report, Result, remember_record
from handgrad.state import explicit_state

__all__ = ["CHECKS", "CaseRun", "assemble", "cases_for", "check", "check_case", "run_oracles",
           "start_case"]

KINK_REDRAWS = 50
# Data redraws looking for a case where every gradient is exercised (non-zero somewhere).
LIVE_REDRAWS = 5


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
    report.diagnoses += transcription.notes(record, report)
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
        with caller_state_kept():
            return _check_case(seeded_per_call(record, case.data_seed), case, set(checks))
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
    if record.backward is None:
        return equation.page_only(record, case)
    early: list[Result] = []
    case, prepared = _choose_data(record, case, early)
    linear = (record.jvp is not None and "jvp" in checks) or (record.hvp is not None
                                                            and "hvp" in checks)
    dtypes = ["float64"] + (["float32"] if ("autograd" in checks or record.reference is None
                                            or linear) and "float32" not in record.skip else [])
    results = list(early)
    for dtype in dtypes:
        run, error = start_case(record, case, dtype)
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
        run_oracles(run, checks - set(record.skip))
        if dtype == "float64":
            run64 = run
            for name in sorted((checks | {"float32"}) & set(record.skip)):
                run.result(name, "(all)", "skipped", message=record.skip[name])
        else:
            reconcile.kinks(run, run64)
        if dtype == "float64":
            reconcile.kinks(run, run)
            reconcile.fd_at_kinks(run)
            reconcile.taylor(run)
            reconcile.linearisations(run)
        results += run.results
    return results


def start_case(record: Derivation, case: Case, dtype: str
               ) -> tuple[CaseRun | None, Result | None]:
    """The case's inputs in ``dtype`` and the hand forward and backward run on them under the
    contract; or the error result saying why the inputs could not be built."""
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
    output_shape_behind_exception(record, inputs, dtype, hand)
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


def run_oracles(run: CaseRun, checks: Iterable[str]) -> None:
    """Every registered oracle that ``checks`` (less what the record skips) asks for, in the
    registry's order, on one started case (:func:`start_case`)."""
    run.checks = frozenset(checks)
    for oracle in REGISTRY:
        if not oracle.wants(run):
            continue
        if not oracle.guard:
            oracle.run(run)
            continue
        with guarded(run, oracle.check, "(all)", f"{oracle.what} (evaluating the forward)",
                     oracle.fix), np.errstate(all="ignore"):
            oracle.run(run)
