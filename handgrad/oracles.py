"""The oracles that differentiate the NumPy forward itself, in float64: finite differences (with
the subgradient test at kinks), the complex step, the Taylor test, and the descent step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from handgrad import fd
from handgrad.autograd import run_reference, to_tensors
from handgrad.cases import full_dims
from handgrad.compare import compare
from handgrad.diagnose import diagnose
from handgrad.kinks import rounding_noise
from handgrad.report import Result
from handgrad.taylor import taylor_test
from handgrad.tolerances import tolerance

DIRECTIONS = 3
# At most this many entries of a big tensor are probed one by one (a failed directional check,
# or autograd mismatches that might sit on kinks).
ENTRY_PROBES = 200


@dataclass(frozen=True)
class KinkSet:
    """Entries of one input at which the forward has a kink (a tie of a max, a relu at 0), as
    flat indices; those where the hand value lies outside the one-sided derivatives; and the
    verdict of the subgradient test (None: it could not decide)."""

    indices: np.ndarray
    outside: np.ndarray
    valid: bool | None
    message: str

    def explains(self, bad: np.ndarray) -> bool:
        return bool(np.isin(bad, self.indices).all())

    def accepts(self, bad: np.ndarray) -> bool:
        return self.valid is not False and not np.isin(bad, self.outside).any()


def usable(run) -> list[str]:
    """The differentiable inputs whose hand gradient can enter a numeric check."""
    return [k for k in run.record.differentiable
            if k in run.hand.grads and run.hand.grads[k].shape == run.inputs[k].shape]


def _elementwise(run) -> bool:
    record = run.record
    if record.fd != "auto":
        return record.fd == "elementwise"
    return sum(run.inputs[k].size for k in record.differentiable) <= record.fd_element_limit


def _rng(run, purpose: int, key: str) -> np.random.Generator:
    return np.random.default_rng([run.case.data_seed, purpose, list(run.record.inputs).index(key)])


def _directions(run, key: str) -> np.ndarray:
    return _rng(run, 2, key).standard_normal((DIRECTIONS, *run.inputs[key].shape))


def _evaluate(run):
    if run.evaluate is None:
        run.evaluate = fd.objective(run.record, run.inputs, run.dout)
    return run.evaluate


def _centre(run) -> tuple[float, float]:
    """(S, sum |terms|) at the case's point, shared by every finite difference of the case."""
    if run.centre is None:
        run.centre = _evaluate_all(run)({})
    return run.centre


def _noise(run) -> float:
    """The rounding noise of S at the case's point, measured once along a random direction over
    every usable input (it is a property of S's computation there, not of the input moved)."""
    if run.sigma is None:
        keys = usable(run)
        rng = np.random.default_rng([run.case.data_seed, 5])
        base = {k: np.asarray(run.inputs[k], np.float64) for k in keys}
        moves = {}
        for k in keys:
            v = rng.standard_normal(base[k].shape)
            moves[k] = v / max(float(np.abs(v).max(initial=0.0)), 1e-300) \
                * max(1.0, float(np.abs(base[k]).max(initial=0.0)))
        evaluate_all = _evaluate_all(run)
        run.sigma = rounding_noise(
            lambda t: evaluate_all({k: base[k] + t * moves[k] for k in keys})[0], 1e-6)
    return run.sigma


def _evaluate_all(run):
    """S with several inputs replaced at once: ``f({name: value}) -> (S, sum |terms|)``."""
    up = np.asarray(run.dout, np.float64)

    def evaluate_all(params: dict[str, np.ndarray]):
        args = {k: v.copy() for k, v in run.inputs.items()}
        args.update({k: np.array(v, dtype=np.float64) for k, v in params.items()})
        out, _ = run.record.forward(**args)
        terms = up * np.asarray(out)
        return float(terms.sum()), float(np.abs(terms).sum())

    return evaluate_all


def _central(run, key: str) -> fd.Estimate:
    """Central differences for input ``key``: per element (flat) or along the case's directions."""
    x = run.inputs[key]
    if _elementwise(run):
        return fd.elementwise(_evaluate(run), key, x, noise=_noise(run), centre=_centre(run))
    return fd.Estimate.join([fd.directional(_evaluate(run), key, x, v, _noise(run),
                                            _centre(run)) for v in _directions(run, key)])


def finite_differences(run) -> None:
    tol = tolerance("float64", "fd", run.record.tolerances)
    for key in usable(run):
        hand = run.hand.grads[key]
        est = _central(run, key)
        if _elementwise(run):
            judge_fd(run, key, hand.ravel(), est, tol, "elementwise", np.arange(hand.size))
            continue
        projected = np.array([np.vdot(hand, v) for v in _directions(run, key)])
        r = judge_fd(run, key, projected, est, tol, f"{DIRECTIONS} Gaussian directions")
        if r.status == "fail":
            _fd_fallback(run, key, tol)


def _probe_indices(run, key: str, size: int) -> np.ndarray:
    if size <= ENTRY_PROBES:
        return np.arange(size)
    return np.sort(_rng(run, 3, key).choice(size, ENTRY_PROBES, replace=False))


def _fd_fallback(run, key: str, tol) -> None:
    """Per-element differences where a directional check failed (a sample on big tensors)."""
    x, hand = run.inputs[key], run.hand.grads[key]
    idx = _probe_indices(run, key, x.size)
    est = fd.elementwise(_evaluate(run), key, x, idx, _noise(run), _centre(run))
    where = "" if idx.size == x.size else f" ({idx.size} of {x.size} entries)"
    judge_fd(run, key, hand.ravel()[idx], est, tol, "elementwise fallback" + where, idx)


def _verdicts(hand: np.ndarray, est: fd.Estimate, tol) -> tuple[np.ndarray, ...]:
    """Per entry: (right, wrong, undecidable by round-off, on a kink with the hand value
    outside the one-sided derivatives)."""
    scale = max(float(np.abs(est.value).max(initial=0.0)), float(np.abs(hand).max(initial=0.0)))
    bound = tol["atol"] * scale + tol["rtol"] * np.abs(est.value)
    close = np.abs(hand - est.value) <= bound + est.error
    # At a kink the one-sided differences carry twice the central difference's round-off (one
    # step of h/2 instead of h).
    slack = bound + 2 * est.roundoff
    lo, hi = np.minimum(est.forward, est.backward), np.maximum(est.forward, est.backward)
    bracketed = (hand >= lo - slack) & (hand <= hi + slack)
    smooth = ~est.kink
    undecidable = smooth & ~close & (est.error > bound)
    return smooth & close, smooth & ~close & ~undecidable, undecidable, est.kink & ~bracketed


def judge_fd(run, key: str, hand: np.ndarray, est: fd.Estimate, tol, method: str,
             indices: np.ndarray | None = None) -> Result:
    """Hand vs a finite-difference estimate, telling kinks and round-off apart from errors.

    An estimate whose own error bound exceeds the tolerance can pass the hand value but never
    fail it. At a point on a kink (where even the smallest step straddles one) no single
    derivative exists: the one-sided differences bound the subgradients where one kink is met,
    but not where several meet (a tie in overlapping windows), so a value outside them is only
    noted; per element, the subgradient test along the direction that moves every kinked entry
    together decides (``indices``: flat indices of per-element estimates)."""
    right, wrong, undecidable, outside = _verdicts(hand, est, tol)
    notes = [method]
    kind = ""
    if indices is not None and est.kink.any():
        kinks = _subgradient(run, key, indices[est.kink], indices[outside], tol)
        run.kinks[key] = kinks
        notes.append(kinks.message)
        if kinks.valid is False:
            kind = "subgradient"
    status = ("fail" if wrong.any() or kind else
              "unreliable" if undecidable.any() or outside.any() else "pass")
    unit = "entries" if indices is not None else "directions"
    if undecidable.any():
        notes.append(f"the finite-difference estimate is unreliable at {int(undecidable.sum())} "
                     f"{unit} (its error bound, from round-off, exceeds the tolerance): not a "
                     "verdict on the derivation")
    if outside.any():
        notes.append(f"at {int(outside.sum())} {unit} on a kink the hand value lies outside the "
                     "one-sided derivatives: not a valid subgradient if one kink meets there, "
                     "possibly valid where several do, so no verdict")
    scale = max(float(np.abs(est.value).max(initial=0.0)), float(np.abs(hand).max(initial=0.0)))
    reference = np.where(est.kink, hand, est.value)
    c = compare(hand, reference, tol["rtol"], tol["atol"], scale=scale, allowance=est.error)
    if wrong.any():
        kind = "values"
        if hand.size == run.inputs[key].size:
            shape = run.inputs[key].shape
            kind, evidence = diagnose(hand.reshape(shape), reference.reshape(shape),
                                      tol["rtol"], tol["atol"],
                                      full_dims(run.record, run.case.dim_map),
                                      run.record.inputs.get(key))
            notes.append(evidence)
    # Per element, the share of entries whose derivative is non-zero beyond the estimate's own
    # error (the coverage of records without a reference); along directions, whether any is.
    moving = np.abs(est.value) > est.error + tol["atol"] * scale
    live = float(moving.mean()) if indices is not None else float(moving.any())
    return run.result("fd", key, status, kind=kind, message="; ".join(notes),
                      max_abs=c.max_abs, max_rel=c.max_rel, worst_index=c.worst_index,
                      hand_value=c.hand_value, ref_value=c.ref_value, rtol=c.rtol, atol=c.atol,
                      live=live if moving.size else np.nan)


def _subgradient(run, key: str, flat: np.ndarray, outside: np.ndarray, tol,
                 moving: np.ndarray | None = None) -> KinkSet:
    """The hand value at entries on kinks, judged as a subgradient along the direction that
    moves them all together (``moving``: them and others, by default them alone). A tie stays a
    tie along it (every tied entry of a max moves with the others, and an entry tied with any of
    them is on a kink too), so where the forward is smooth along it every valid subgradient
    gives the same derivative, and the hand value must give it. Where the forward has a kink
    along it too (a relu at 0), no verdict."""
    x, hand = run.inputs[key], run.hand.grads[key]
    v = np.zeros(x.size)
    v[flat if moving is None else moving] = 1.0
    v = v.reshape(x.shape)
    est = fd.directional(_evaluate(run), key, x, v, _noise(run), _centre(run))
    projected = np.array([np.vdot(hand, v)])
    right, wrong, _, _ = _verdicts(projected, est, tol)
    where = f"{flat.size} entries lie on a kink (a tie of a max, a relu at 0, ...)"
    if est.kink[0]:
        return KinkSet(flat, outside, None, f"{where}; the forward has a kink along the "
                                            "direction moving them together too: the "
                                            "subgradient test cannot decide there")
    if right[0] or not wrong[0]:
        return KinkSet(flat, outside, True, f"{where}: along the direction moving them "
                                            "together the hand gradient gives the forward's "
                                            "derivative, as a valid subgradient must")
    ratio = projected[0] / est.value[0] if est.value[0] else float("inf")
    return KinkSet(flat, outside, False, f"{where}: along the direction moving them together "
                                         f"(which keeps every tie) the hand gradient gives "
                                         f"{projected[0]:.6g} where the forward's derivative "
                                         f"is {est.value[0]:.6g} (x{ratio:.3g}): not a valid "
                                         "subgradient (a max that sends its gradient to every "
                                         "tied input?)")


def kinks_of(run, key: str, flat: np.ndarray, partners: np.ndarray) -> KinkSet | None:
    """The kinks among the entries ``flat``, probing them one by one where the finite
    differences ran along directions only. The subgradient test then moves them together with
    ``partners`` (where autograd's subgradient is non-zero: the tie partners it chose), as a
    probe of a sample cannot know every entry tied with them."""
    known = run.kinks.get(key)
    if known is None and not _elementwise(run):
        idx = flat if flat.size <= ENTRY_PROBES else flat[:ENTRY_PROBES]
        est = fd.elementwise(_evaluate(run), key, run.inputs[key], idx, _noise(run),
                             _centre(run))
        hand = run.hand.grads[key].ravel()[idx]
        tol = tolerance("float64", "fd", run.record.tolerances)
        _, _, _, outside = _verdicts(hand, est, tol)
        if est.kink.any():
            known = _subgradient(run, key, idx[est.kink], idx[outside], tol,
                                 moving=np.union1d(idx[est.kink], partners))
            run.kinks[key] = known
    return known


def complex_step(run) -> None:
    evaluate = fd.objective(run.record, run.inputs, run.dout, dtype=np.complex128)
    tol = tolerance("float64", "autograd", run.record.tolerances)
    for key in usable(run):
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


def _agrees_with_central(run, key: str, est: np.ndarray) -> bool:
    """Whether a complex-step estimate matches Richardson central differences."""
    central = _central(run, key)
    tol = tolerance("float64", "fd", run.record.tolerances)
    return compare(np.ravel(est), central.value, tol["rtol"], tol["atol"],
                   allowance=central.error).passed


def taylor(run) -> None:
    keys = usable(run)
    if not keys:
        return
    rng = np.random.default_rng([run.case.data_seed, 4])
    with np.errstate(all="ignore"):
        t = taylor_test(_evaluate_all(run), {k: run.inputs[k] for k in keys},
                        {k: run.hand.grads[k] for k in keys}, rng, sigma=_noise(run))
    run.taylor = t
    run.result("taylor", "(all)", t.status, kind="" if t.status != "fail" else "first-order",
               message=t.message, max_rel=t.slope)


def descent(run) -> None:
    """One step of the record's update rule on S = sum(dout * out) (the loss itself, scaled,
    for a scalar loss; any layer's output otherwise): it lowers S and matches torch.optim.SGD
    on the reference. The steps (new - old) are compared, so a wrong step is diagnosed as such
    (an ascent is a sign)."""
    import torch

    record = run.record
    if not all(k in run.hand.grads for k in record.differentiable):
        return
    up = np.asarray(run.dout, np.float64)
    s0 = float((up * run.hand.out).sum())
    grads = dict(run.hand.grads)
    params = {k: run.inputs[k].copy() for k in record.differentiable}
    norm2 = sum(float(np.vdot(g, g)) for k, g in grads.items() if k in params)
    lr = 1e-3 * max(abs(s0), 1.0) / max(norm2, 1e-12)
    new = record.update({k: v.copy() for k, v in params.items()}, grads, lr)
    misshapen = [k for k in new if np.shape(new[k]) != np.shape(run.inputs.get(k))]
    tol = tolerance("float64", "autograd", record.tolerances)
    if run.ref_grads:
        tensors = to_tensors(record, run.inputs, "float64")
        leaves = [tensors[k] for k in new]
        optimizer = torch.optim.SGD(leaves, lr=lr)
        ref_out, _ = run_reference(record, tensors)
        (ref_out * torch.from_numpy(up)).sum().backward()
        optimizer.step()
        stepped = {k: leaf.detach().numpy() for k, leaf in zip(new, leaves)}
    else:  # no reference: plain SGD with the gradients finite differences vouched for
        stepped = {k: params[k] - lr * grads[k] for k in new}
    for key in new:
        old = params.get(key, run.inputs[key])
        hand_step = np.asarray(new[key]) - old if key not in misshapen else np.asarray(new[key])
        run.compare("descent", key, hand_step, stepped[key] - old, tol)
    if misshapen:
        return
    new_out, _ = record.forward(**{**run.inputs, **new})
    s1 = float((up * np.asarray(new_out)).sum())
    lowered = s1 < s0
    what = "loss" if np.shape(run.hand.out) == () else "sum(dout * out)"
    run.result("descent", "(loss)", "pass" if lowered else "fail",
               kind="" if lowered else "ascent", hand_value=s1, ref_value=s0,
               message=f"{what} {s0:.6g} -> {s1:.6g} after one step with lr={lr:.2e}"
                       + ("" if lowered else ": the update climbs"))
