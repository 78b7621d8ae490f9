"""Finite differences of the NumPy forward against the hand gradient, in float64, with the
subgradient test at kinks (per element where the inputs are small, along random directions
otherwise, with a per-element fallback where a direction fails)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.cases import full_dims
from handgrad.compare import compare
from handgrad.diagnose import diagnose
from handgrad.oracles.base import (
    DIRECTIONS,
    Oracle,
    central,
    centre,
    directions,
    elementwise,
    evaluate,
    noise,
    rng,
    usable,
)
from handgrad.oracles.numerics import fd
from handgrad.report import Result
from handgrad.tolerances import tolerance

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
    # The subgradient test's own figures: the hand gradient along the direction moving the
    # kinked entries together, and the forward's derivative along it.
    hand: float = float("nan")
    derivative: float = float("nan")

    def explains(self, bad: np.ndarray) -> bool:
        return bool(np.isin(bad, self.indices).all())

    def accepts(self, bad: np.ndarray) -> bool:
        return self.valid is not False and not np.isin(bad, self.outside).any()


def finite_differences(run: CaseRun) -> None:
    tol = tolerance("float64", "fd", run.record.tolerances)
    for key in usable(run):
        hand = run.hand.grads[key]
        est = central(run, key)
        if elementwise(run):
            judge_fd(run, key, hand.ravel(), est, tol, "elementwise", np.arange(hand.size))
            continue
        projected = np.array([np.vdot(hand, v) for v in directions(run, key)])
        r = judge_fd(run, key, projected, est, tol, f"{DIRECTIONS} Gaussian directions")
        if r.status == "fail":
            _fd_fallback(run, key, tol)


def _probe_indices(run: CaseRun, key: str, size: int) -> np.ndarray:
    if size <= ENTRY_PROBES:
        return np.arange(size)
    return np.sort(rng(run, 3, key).choice(size, ENTRY_PROBES, replace=False))


def _fd_fallback(run: CaseRun, key: str, tol) -> None:
    """Per-element differences where a directional check failed (a sample on big tensors)."""
    x, hand = run.inputs[key], run.hand.grads[key]
    idx = _probe_indices(run, key, x.size)
    est = fd.elementwise(evaluate(run), key, x, idx, noise(run), centre(run))
    where = "" if idx.size == x.size else f" ({idx.size} of {x.size} entries)"
    judge_fd(run, key, hand.ravel()[idx], est, tol, "elementwise fallback" + where, idx)


def verdicts(hand: np.ndarray, est: fd.Estimate, tol) -> tuple[np.ndarray, ...]:
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


def judge_fd(run: CaseRun, key: str, hand: np.ndarray, est: fd.Estimate, tol, method: str,
             indices: np.ndarray | None = None) -> Result:
    """Hand vs a finite-difference estimate, telling kinks and round-off apart from errors.

    An estimate whose own error bound exceeds the tolerance can pass the hand value but never
    fail it. At a point on a kink (where even the smallest step straddles one) no single
    derivative exists: the one-sided differences bound the subgradients where one kink is met,
    but not where several meet (a tie in overlapping windows), so a value outside them is only
    noted; per element, the subgradient test along the direction that moves every kinked entry
    together decides (``indices``: flat indices of per-element estimates)."""
    right, wrong, undecidable, outside = verdicts(hand, est, tol)
    notes = [method]
    kind = ""
    if indices is not None and est.kink.any():
        kinks = subgradient(run, key, indices[est.kink], indices[outside], tol)
        run.kinks[key] = kinks
        notes.append(kinks.message)
        if kinks.valid is False:
            kind = "subgradient"
    unit = "entries" if indices is not None else "directions"
    # Where every hand value and every estimate lies within the estimate's own error, the
    # differences cannot tell this gradient from zero (a softmax loss on logits over +-1000 is
    # 0.0 with a gradient of 1e-76): no verdict. Both exactly zero is agreement (S does not move).
    resolution = float(est.error.max(initial=0.0))
    unresolved = bool(hand.size) and bool(
        np.all(np.maximum(np.abs(hand), np.abs(est.value)) <= est.error)) \
        and bool(np.any(hand) or np.any(est.value)) and kind != "subgradient"
    if unresolved:
        wrong = np.zeros_like(wrong)
        notes.append(f"every {'entry' if indices is not None else 'direction'} of the gradient "
                     f"(largest hand value {float(np.abs(hand).max()):.3g}) lies below what "
                     f"finite differences resolve here ({resolution:.2g}: the rounding of the "
                     "loss over the step): not a verdict on the derivation")
    status = ("fail" if wrong.any() or kind else
              "unreliable" if undecidable.any() or outside.any() or unresolved else "pass")
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
                                      run.record.inputs.get(key), reference="fd",
                                      upstream=run.scalar_upstream())
            notes.append(evidence)
    # Per element, the share of entries whose derivative is non-zero beyond the estimate's own
    # error (the coverage of records without a reference); along directions, whether any is.
    moving = np.abs(est.value) > est.error + tol["atol"] * scale
    live = float(moving.mean()) if indices is not None else float(moving.any())
    figures = dict(max_abs=c.max_abs, max_rel=c.max_rel, worst_index=c.worst_index,
                   hand_value=c.hand_value, ref_value=c.ref_value)
    if kind == "subgradient" and not wrong.any():
        # The entry-wise figures leave the kinks out (compared with themselves there): the
        # row shows what failed, the derivative along the direction moving the kinked entries.
        p, d = run.kinks[key].hand, run.kinks[key].derivative
        figures = dict(max_abs=abs(p - d), max_rel=abs(p - d) / abs(d) if d else float("inf"),
                       worst_index=(), hand_value=p, ref_value=d)
    return run.result("fd", key, status, kind=kind, message="; ".join(notes),
                      **figures, rtol=c.rtol, atol=c.atol,
                      live=live if moving.size and not unresolved else np.nan)


def subgradient(run: CaseRun, key: str, flat: np.ndarray, outside: np.ndarray, tol,
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
    est = fd.directional(evaluate(run), key, x, v, noise(run), centre(run))
    projected = np.array([np.vdot(hand, v)])
    right, wrong, _, _ = verdicts(projected, est, tol)
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
                                         "tied input?)", float(projected[0]),
                   float(est.value[0]))


def kinks_of(run: CaseRun, key: str, flat: np.ndarray, partners: np.ndarray) -> KinkSet | None:
    """The kinks among the entries ``flat``, probing them one by one where the finite
    differences ran along directions only. The subgradient test then moves them together with
    ``partners`` (where autograd's subgradient is non-zero: the tie partners it chose), as a
    probe of a sample cannot know every entry tied with them."""
    known = run.kinks.get(key)
    if known is None and not elementwise(run):
        idx = flat if flat.size <= ENTRY_PROBES else flat[:ENTRY_PROBES]
        est = fd.elementwise(evaluate(run), key, run.inputs[key], idx, noise(run),
                             centre(run))
        hand = run.hand.grads[key].ravel()[idx]
        tol = tolerance("float64", "fd", run.record.tolerances)
        _, _, _, outside = verdicts(hand, est, tol)
        if est.kink.any():
            known = subgradient(run, key, idx[est.kink], idx[outside], tol,
                                 moving=np.union1d(idx[est.kink], partners))
            run.kinks[key] = known
    return known


ORACLE = Oracle("fd", "finite differences", finite_differences)
