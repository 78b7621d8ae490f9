"""Checking one derivation: every oracle on every case, one report."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np

from handgrad import fd
from handgrad.autograd import autograd_oracle, run_reference, to_tensors
from handgrad.cases import Case, build_inputs, full_dims, sample_cases, upstream
from handgrad.compare import compare
from handgrad.contract import HandRun, run_hand
from handgrad.diagnose import diagnose, diagnose_shape
from handgrad.discovery import find
from handgrad.localise import localise, smallest_failing
from handgrad.record import CHECKS, Derivation
from handgrad.report import Report, Result
from handgrad.taylor import taylor_test
from handgrad.tolerances import tolerance

DIRECTIONS = 3
# Two float32 programs for the same sum (pairwise, blocked, sequential) round differently, by
# up to a few times each other's error; 10 covers that spread.
ROUNDING_MARGIN = 10.0
KINK_REDRAWS = 50


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

    def result(self, check: str, tensor: str, status: str, **fields) -> Result:
        r = Result(derivation=self.record.name, case=self.case.describe(),
                   data_seed=self.case.data_seed, dtype=self.dtype, check=check, tensor=tensor,
                   status=status, tag=self.record.tags.get(tensor, ""), **fields)
        self.results.append(r)
        return r

    def compare(self, check: str, key: str, hand: np.ndarray, ref: np.ndarray,
                tol: Mapping[str, float], allowance=0.0) -> Result:
        hand = np.asarray(hand)
        ref = np.asarray(ref)
        if hand.shape != ref.shape:
            return self.result(check, key, "fail", kind="wrong-shape",
                               message=diagnose_shape(hand, ref, tol["rtol"], tol["atol"]))
        c = compare(hand, ref, tol["rtol"], tol["atol"], allowance=allowance)
        kind, message = "", ""
        if not c.passed:
            axes = self.record.inputs.get(key) or self.record.intermediate_shapes.get(key)
            kind, message = diagnose(hand, ref, tol["rtol"], tol["atol"],
                                     full_dims(self.record, self.case.dim_map), axes)
        return self.result(check, key, "pass" if c.passed else "fail", kind=kind,
                           message=message, max_abs=c.max_abs, max_rel=c.max_rel,
                           worst_index=c.worst_index, hand_value=c.hand_value,
                           ref_value=c.ref_value, rtol=c.rtol, atol=c.atol)


def resolve(record_or_name: Derivation | str) -> Derivation:
    return record_or_name if isinstance(record_or_name, Derivation) else find(record_or_name)


def check(record_or_name: Derivation | str, seed: int = 0, cases: int = 4, *,
          dims: Mapping[str, int] | None = None, data_seed: int | None = None,
          checks: Iterable[str] = CHECKS, shrink: bool = True) -> Report:
    """Check one derivation on ``cases`` sampled cases (or the one case ``dims``/``data_seed``).

    Returns a :class:`Report`; ``report.passed`` says whether the hand gradients are right.
    """
    record = resolve(record_or_name)
    checks = tuple(checks)
    report = Report(record.name, record.expect, record.erratum, record.doc)
    if dims is not None:
        lows = {k: lo for k, (lo, _) in record.dims.items()}
        todo = [Case.of({**lows, **dims}, 0 if data_seed is None else data_seed, "given")]
    else:
        todo = sample_cases(record, seed, cases)
    for case in todo:
        results = check_case(record, case, checks)
        report.results += results
        failed = [r for r in results if not r.passed]
        if failed:
            report.diagnoses += localise(record, results)
            if shrink:
                report.diagnoses += smallest_failing(record, failed[0], failed, check_case)
    return report


def check_case(record: Derivation, case: Case, checks: Iterable[str] = CHECKS) -> list[Result]:
    """All checks of one case, float64 then float32."""
    checks = set(checks)
    try:
        case = _away_from_kinks(record, case)
        runs = [_start(record, case, dtype) for dtype in ("float64", "float32")
                if dtype == "float64" or ("autograd" in checks and dtype not in record.skip)]
    except Exception as exc:  # noqa: BLE001 - a record that cannot run is a result, not a crash
        return [Result(record.name, case.describe(), case.data_seed, "float64", "contract",
                       "(inputs)", "error", kind="exception",
                       message=f"sampling inputs or the first forward raised "
                               f"{type(exc).__name__}: {exc}; check samplers, dims and forward")]
    results = []
    for run in runs:
        for tensor, kind, message in run.hand.problems:
            status = "error" if kind in ("exception", "bad-return", "not-a-dict") else "fail"
            run.result("contract", tensor, status, kind=kind, message=message)
        if run.hand.fatal:
            results += run.results
            break
        _checks_of(run, checks - set(record.skip))
        if run.dtype == "float64":
            for name in sorted((checks | {"float32"}) & set(record.skip)):
                run.result(name, "(all)", "skipped", message=record.skip[name])
        results += run.results
    return results


def _start(record: Derivation, case: Case, dtype: str) -> CaseRun:
    inputs = build_inputs(record, case, dtype)
    with np.errstate(all="ignore"):
        out, _ = record.forward(**{k: v.copy() for k, v in inputs.items()})
    dout = upstream(np.shape(out), case, dtype)
    with np.errstate(all="ignore"):
        hand = run_hand(record, inputs, dout, dtype)
    return CaseRun(record, case, dtype, inputs, dout, hand)


def _away_from_kinks(record: Derivation, case: Case) -> Case:
    """Redraw the data until the point is ``kink_margin`` away from every kink."""
    if record.kink_distance is None:
        return case
    for i in range(KINK_REDRAWS):
        candidate = dataclasses.replace(case, data_seed=case.data_seed + i)
        _, cache = record.forward(**build_inputs(record, candidate))
        if record.kink_distance(cache) >= record.kink_margin:
            return candidate
    return case


def _checks_of(run: CaseRun, checks: set[str]) -> None:
    record = run.record
    try:
        ref_out, ref_grads = autograd_oracle(record, run.inputs, run.dout, run.dtype)
    except Exception as exc:  # noqa: BLE001 - a broken reference is reported, not raised
        run.result("autograd", "(reference)", "error", kind="reference-error",
                   message=f"the PyTorch reference raised {type(exc).__name__}: {exc}")
        return
    rounding = _rounding_of_reference(run, ref_out, ref_grads)
    if "forward" in checks or "autograd" in checks:
        run.compare("forward", "(output)", run.hand.out, ref_out,
                    tolerance(run.dtype, "forward", record.tolerances),
                    allowance=rounding.get("(output)", 0.0))
    if "autograd" in checks:
        tol = tolerance(run.dtype, "autograd", record.tolerances)
        for key in (*record.intermediates, *record.differentiable):
            if key in run.hand.grads:
                run.compare("autograd", key, run.hand.grads[key], ref_grads[key], tol,
                            allowance=rounding.get(key, 0.0))
    if run.dtype != "float64":
        return
    if "fd" in checks:
        _finite_differences(run)
    if "complex-step" in checks and record.complex_step:
        _complex_step(run)
    if "taylor" in checks:
        _taylor(run)
    if "descent" in checks and record.update is not None and np.shape(run.hand.out) == ():
        _descent(run)


def _rounding_of_reference(run: CaseRun, ref_out, ref_grads) -> dict[str, float]:
    """In float32, ROUNDING_MARGIN times the largest error of the float32 reference against
    float64 autograd on the very same (rounded) inputs, per tensor.

    Where a gradient is a small difference of large terms (a softmax bias gradient summed over
    the batch), float32 loses digits relative to the terms, not to the result; the reference's
    own float32 error measures that loss, and a right hand program rounds within a small
    multiple of it. In float64 there is no allowance.
    """
    if run.dtype == "float64":
        return {}
    up = np.asarray(run.dout, np.float64)
    exact = {k: (v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v)
             for k, v in run.inputs.items()}
    out64, grads64 = autograd_oracle(run.record, exact, up, "float64")
    spread = {k: float(np.abs(ref_grads[k] - grads64[k]).max(initial=0.0)) for k in grads64}
    spread["(output)"] = float(np.abs(ref_out - out64).max(initial=0.0))
    return {k: ROUNDING_MARGIN * v for k, v in spread.items()}


def _usable(run: CaseRun) -> list[str]:
    """The differentiable inputs whose hand gradient can enter a numeric check."""
    return [k for k in run.record.differentiable
            if k in run.hand.grads and run.hand.grads[k].shape == run.inputs[k].shape]


def _elementwise(run: CaseRun) -> bool:
    record = run.record
    if record.fd != "auto":
        return record.fd == "elementwise"
    return sum(run.inputs[k].size for k in record.differentiable) <= record.fd_element_limit


def _directions(run: CaseRun, key: str) -> np.ndarray:
    rng = np.random.default_rng([run.case.data_seed, 2, list(run.record.inputs).index(key)])
    return rng.standard_normal((DIRECTIONS, *run.inputs[key].shape))


def _central(run: CaseRun, evaluate, key: str, noise: float) -> fd.Estimate:
    """Central differences for input ``key``: per element (flat) or along the case's directions."""
    x = run.inputs[key]
    if _elementwise(run):
        return fd.elementwise(evaluate, key, x, noise=noise)
    return fd.Estimate.join([fd.directional(evaluate, key, x, v, noise)
                             for v in _directions(run, key)])


def _finite_differences(run: CaseRun) -> None:
    evaluate = fd.objective(run.record, run.inputs, run.dout)
    tol = tolerance("float64", "fd", run.record.tolerances)
    for key in _usable(run):
        hand = run.hand.grads[key]
        noise = _noise(run, evaluate, key)
        est = _central(run, evaluate, key, noise)
        if _elementwise(run):
            _judge_fd(run, key, hand.ravel(), est, tol, "elementwise")
            continue
        projected = np.array([np.vdot(hand, v) for v in _directions(run, key)])
        r = _judge_fd(run, key, projected, est, tol, f"{DIRECTIONS} Gaussian directions")
        if r.status == "fail":
            _fd_fallback(run, evaluate, key, tol, noise)


def _noise(run: CaseRun, evaluate, key: str) -> float:
    rng = np.random.default_rng([run.case.data_seed, 5, list(run.record.inputs).index(key)])
    return fd.noise_level(evaluate, key, run.inputs[key], rng)


def _fd_fallback(run: CaseRun, evaluate, key: str, tol, noise: float) -> None:
    """Per-element differences where a directional check failed (a sample on big tensors)."""
    x, hand = run.inputs[key], run.hand.grads[key]
    limit = 4 * run.record.fd_element_limit
    rng = np.random.default_rng([run.case.data_seed, 3])
    idx = np.arange(x.size) if x.size <= limit else np.sort(rng.choice(x.size, limit, False))
    est = fd.elementwise(evaluate, key, x, idx, noise)
    where = "" if x.size <= limit else f" ({limit} of {x.size} entries)"
    _judge_fd(run, key, hand.ravel()[idx], est, tol, "elementwise fallback" + where)


def _judge_fd(run: CaseRun, key: str, hand: np.ndarray, est: fd.Estimate, tol,
              method: str) -> Result:
    """Hand vs a finite-difference estimate, telling kinks and round-off apart from errors.

    An estimate whose own error bound exceeds the tolerance is unreliable: it can pass the hand
    value (within its bound, or between the one-sided differences at a kink) but never fail it.
    """
    scale = max(float(np.abs(est.value).max(initial=0.0)), float(np.abs(hand).max(initial=0.0)))
    bound = tol["atol"] * scale + tol["rtol"] * np.abs(est.value)
    unreliable = est.error > bound
    kink = unreliable & (est.truncation > est.roundoff)
    lo, hi = np.minimum(est.forward, est.backward), np.maximum(est.forward, est.backward)
    bracketed = (hand >= lo - bound) & (hand <= hi + bound)
    close = np.abs(hand - est.value) <= bound + est.error
    ok = close | (kink & bracketed)
    c = compare(hand, est.value, tol["rtol"], tol["atol"], scale=scale, allowance=est.error)
    notes = [method]
    kinks = int((kink & bracketed & ~close).sum())
    if kinks:
        notes.append(f"{kinks} estimate(s) straddle a kink; the hand value lies between the "
                     "one-sided differences there")
    status = "pass"
    if (~ok & ~unreliable).any():
        status = "fail"
    elif not ok.all():
        status = "unreliable"
        notes.append(f"the finite-difference estimate is unreliable at {int((~ok).sum())} "
                     "entries (its error bound, from a kink or round-off, exceeds the "
                     "tolerance): not a verdict on the derivation")
    kind = ""
    if status == "fail":
        kind = "values"
        if hand.size == run.inputs[key].size:
            shape = run.inputs[key].shape
            kind, evidence = diagnose(hand.reshape(shape), est.value.reshape(shape),
                                      tol["rtol"], tol["atol"],
                                      full_dims(run.record, run.case.dim_map),
                                      run.record.inputs.get(key))
            notes.append(evidence)
    return run.result("fd", key, status, kind=kind, message="; ".join(notes),
                      max_abs=c.max_abs, max_rel=c.max_rel, worst_index=c.worst_index,
                      hand_value=c.hand_value, ref_value=c.ref_value, rtol=c.rtol, atol=c.atol)


def _complex_step(run: CaseRun) -> None:
    evaluate = fd.objective(run.record, run.inputs, run.dout, dtype=np.complex128)
    tol = tolerance("float64", "autograd", run.record.tolerances)
    for key in _usable(run):
        hand, x = run.hand.grads[key], run.inputs[key]
        try:
            with np.errstate(all="ignore"):
                if _elementwise(run):
                    est = fd.complex_step(evaluate, key, x).reshape(x.shape)
                else:
                    dirs = _directions(run, key)
                    est = fd.complex_step(evaluate, key, x, dirs)
                    hand = np.array([np.vdot(hand, v) for v in dirs])
        except (TypeError, ValueError) as exc:
            run.result("complex-step", key, "unreliable", kind="no-complex",
                       message=f"the forward does not accept complex input ({exc}); "
                       "set complex_step=False on the record")
            return
        r = run.compare("complex-step", key, hand, est, tol)
        if r.status == "fail" and not _agrees_with_central(run, key, est):
            run.results[-1] = dataclasses.replace(
                r, status="unreliable", kind="not-holomorphic",
                message="the complex-step estimate disagrees with central differences: the "
                        "forward is not holomorphic in this input (abs, max, comparisons); set "
                        "complex_step=False on the record. Not a verdict on the derivation.")


def _agrees_with_central(run: CaseRun, key: str, est: np.ndarray) -> bool:
    """Whether a complex-step estimate matches Richardson central differences."""
    evaluate = fd.objective(run.record, run.inputs, run.dout)
    central = _central(run, evaluate, key, _noise(run, evaluate, key))
    tol = tolerance("float64", "fd", run.record.tolerances)
    return compare(np.ravel(est), central.value, tol["rtol"], tol["atol"],
                   allowance=central.error).passed


def _taylor(run: CaseRun) -> None:
    keys = _usable(run)
    if not keys:
        return
    base = dict(run.inputs)
    up = np.asarray(run.dout, np.float64)

    def evaluate_all(params: dict[str, np.ndarray]):
        out, _ = run.record.forward(**{**{k: v.copy() for k, v in base.items()}, **params})
        terms = up * np.asarray(out)
        return float(terms.sum()), float(np.abs(terms).sum())

    rng = np.random.default_rng([run.case.data_seed, 4])
    with np.errstate(all="ignore"):
        t = taylor_test(evaluate_all, {k: base[k] for k in keys},
                        {k: run.hand.grads[k] for k in keys}, rng)
    run.result("taylor", "(all)", t.status, kind="" if t.status != "fail" else "first-order",
               message=t.message, max_rel=t.slope)


def _descent(run: CaseRun) -> None:
    """One hand-written update step: it lowers the loss and matches torch.optim.SGD."""
    import torch

    record = run.record
    one = np.asarray(1.0)
    hand = run_hand(record, run.inputs, one, "float64")
    if hand.fatal or not all(k in hand.grads for k in record.differentiable):
        return
    params = {k: run.inputs[k].copy() for k in record.differentiable}
    norm2 = sum(float(np.vdot(g, g)) for k, g in hand.grads.items() if k in params)
    lr = 1e-3 * max(abs(float(hand.out)), 1.0) / max(norm2, 1e-12)
    try:
        new = record.update(params, dict(hand.grads), lr)
        new_out, _ = record.forward(**{**run.inputs, **new})
    except Exception as exc:  # noqa: BLE001
        run.result("descent", "(update)", "error", kind="exception",
                   message=f"the update rule raised {type(exc).__name__}: {exc}")
        return
    tensors = to_tensors(record, run.inputs, "float64")
    leaves = [tensors[k] for k in new]
    optimizer = torch.optim.SGD(leaves, lr=lr)
    loss, _ = run_reference(record, tensors)
    loss.backward()
    optimizer.step()
    tol = tolerance("float64", "autograd", record.tolerances)
    for key, leaf in zip(new, leaves):
        run.compare("descent", key, new[key], leaf.detach().numpy(), tol)
    lowered = float(new_out) < float(hand.out)
    run.result("descent", "(loss)", "pass" if lowered else "fail",
               kind="" if lowered else "ascent", hand_value=float(new_out),
               ref_value=float(hand.out),
               message=f"loss {float(hand.out):.6g} -> {float(new_out):.6g} after one step "
                       f"with lr={lr:.2e}" + ("" if lowered else ": the update climbs"))
