"""What kind of error a wrong gradient is: the evidence that turns a mismatch into a diagnosis."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    scale = float(np.abs(b).max(initial=0.0))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol * scale + rtol * np.abs(b)))


def named_factors(dims: Mapping[str, int]) -> list[tuple[float, str]]:
    """Factors a hand gradient is commonly off by: 2, 1/2 and each dimension, its square, its
    inverse (a missing 1/N, a mean for a sum, a pool area p^2)."""
    out = [(2.0, "2"), (0.5, "1/2")]
    for name, v in dims.items():
        if v > 1:
            out += [(float(v), name), (1.0 / v, f"1/{name}"),
                    (float(v * v), f"{name}^2"), (1.0 / (v * v), f"1/{name}^2")]
    return out


# A wrong gradient with at most this share of its entries wrong, not gathered in slices, is
# told as scattered entries.
SPARSE = 0.25


def _where(bad: np.ndarray, shown: int = 6) -> str:
    flat = np.flatnonzero(bad)
    out = ", ".join(str([int(j) for j in np.unravel_index(i, bad.shape)]) for i in flat[:shown])
    return out + (", ..." if flat.size > shown else "")


def _without_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _axis_name(axes: Sequence[str] | None, i: int) -> str:
    return f"axis {i} ({axes[i]})" if axes and i < len(axes) else f"axis {i}"


def diagnose_shape(hand: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> str:
    """Evidence for a gradient of the wrong shape."""
    msg = f"hand shape {hand.shape}, reference shape {ref.shape}"
    if hand.size == ref.size and _without_ones(hand.shape) == _without_ones(ref.shape) \
            and _close(hand.reshape(ref.shape), ref, rtol, atol):
        extra = "an extra" if hand.ndim > ref.ndim else "a missing"
        return msg + f"; the values are right, only {extra} size-1 axis differs (keepdims=True, " \
                     f"or a reshape): return shape {ref.shape}"
    if hand.ndim == 2 and hand.shape == ref.shape[::-1] and _close(hand.T, ref, rtol, atol):
        return msg + "; hand.T matches: the gradient is transposed"
    for count in range(1, hand.ndim):
        for axes in itertools.combinations(range(hand.ndim), count):
            summed = hand.sum(axis=axes)
            if summed.size == ref.size and _without_ones(summed.shape) == \
                    _without_ones(ref.shape) and _close(summed.reshape(ref.shape), ref, rtol,
                                                         atol):
                what = f"axis={axes[0]}" if count == 1 else f"axis={axes}"
                where = f"axis {axes[0]} (the batch?)" if count == 1 else f"axes {axes}"
                return msg + f"; hand.sum({what}) matches: a reduction over {where} is missing"
    if hand.size == ref.size and _close(hand.reshape(ref.shape), ref, rtol, atol):
        return msg + "; same values, wrong layout: reshape to the input's shape"
    return msg


def diagnose(hand: np.ndarray, ref: np.ndarray, rtol: float, atol: float,
             dims: Mapping[str, int], axes: Sequence[str] | None = None,
             reference: str = "autograd", upstream: float | None = None) -> tuple[str, str]:
    """(kind, evidence) for a hand gradient that fails against ``ref`` (same shape);
    ``reference``: what ``ref`` is (``"autograd"`` or ``"fd"``), for what an exact zero means;
    ``upstream``: the scalar upstream gradient the engine multiplied into both (a scalar loss),
    so that values are told in the code's own units."""
    h, r = np.asarray(hand, np.float64), np.asarray(ref, np.float64)
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(r))):
        return _non_finite(h, r)
    scale = float(np.abs(r).max(initial=0.0))
    bound = atol * scale + rtol * np.abs(r)
    bad = np.abs(h - r) > bound
    if not np.any(r):
        why = ("moving this input by the step leaves the loss unchanged to the last bit"
               if reference == "fd" else
               "this input does not reach the loss here, or only through zero derivatives")
        return ("nonzero-where-zero", f"the reference is exactly zero everywhere ({why}) but "
                "the hand gradient is not")
    if not np.any(h):
        return "zero", "the hand gradient is exactly zero where the reference is not"
    if float(np.abs(h).max()) <= atol * scale:
        return "zero", "the hand gradient is zero up to rounding where the reference is not " \
                       "(terms that cancel: a sum over the wrong index?)"
    alpha = float(np.vdot(h, r) / np.vdot(r, r))
    if h.size == 1:
        return _single(float(h.ravel()[0]), float(r.ravel()[0]), dims)
    if _close(h, alpha * r, rtol, atol):
        return _factor(alpha, dims)
    offset = _offset(h, r, rtol, atol, axes)
    if offset:
        return offset
    shape_kind = _layout(h, r, rtol, atol)
    if shape_kind:
        return shape_kind
    slices, coverage = _slices(bad, axes)
    if bad.sum() <= 3 < bad.size and coverage < 0.5:
        return "entries", f"only {int(bad.sum())} of {bad.size} entries wrong: {_where(bad)}"
    extra, lost = bad & (r == 0) & (h != 0), bad & (h == 0) & (r != 0)
    if extra.any() and lost.any() and np.array_equal(bad, extra | lost):
        return ("mask", f"the zero pattern differs, values agree elsewhere: non-zero at "
                f"{int(extra.sum())} entries where the reference is exactly zero, zero at "
                f"{int(lost.sum())} where it is not (a mask or connection table indexed the "
                "wrong way round?)")
    if np.all(r[bad] == 0):
        return ("nonzero-where-zero", f"non-zero at {int(bad.sum())} entries where the reference "
                "is exactly zero (a weight the forward never uses, e.g. one a table switches off)")
    if np.all(h[bad] == 0):
        return ("zero-entries", f"exactly zero at {int(bad.sum())} of {bad.size} entries where the "
                "reference is not")
    t = float(np.abs(r[bad]).min())
    clipped = np.all(np.abs(h[bad]) < np.abs(r[bad])) and np.any(~bad & (np.abs(r) > 0.1 * t))
    if clipped and bad.sum() < bad.size and np.array_equal(bad, np.abs(r) >= t):
        u = abs(upstream) if upstream else 1.0
        where = (f" (in the code's units: the engine multiplied its upstream gradient "
                 f"{upstream:.4g} into both)" if upstream and u != 1.0 else "")
        m = np.abs(h[bad])
        if np.allclose(m, m[0], rtol=1e-9, atol=0):
            return ("threshold", f"clipped: the hand value is +-{m[0] / u:.6g} at the "
                    f"{int(bad.sum())} entries where the reference exceeds it (|reference| >= "
                    f"{t / u:.3g}), right below it{where}: a gradient clipped at {m[0] / u:.6g} "
                    "inside backward?")
        return ("threshold", f"wrong exactly at the {int(bad.sum())} entries with |reference| >= "
                f"{t / u:.3g}, right below it{where}: clipped or thresholded inside backward?")
    if bad.mean() <= SPARSE and coverage < 0.5:
        return "entries", f"only {int(bad.sum())} of {bad.size} entries wrong, scattered: " \
                          f"{_where(bad)} (an index mix-up, an overwrite where a sum is due?)"
    if slices:
        return "slices", slices
    return "values", f"{int(bad.sum())} of {bad.size} entries wrong, with no simple pattern " \
                     f"(best scalar fit: hand = {alpha:.4g} x reference)"


def _non_finite(h: np.ndarray, r: np.ndarray) -> tuple[str, str]:
    """NaN or inf on either side: nothing fitted to the finite part means anything."""
    bad_h, bad_r = ~np.isfinite(h), ~np.isfinite(r)
    if bad_r.any() and not bad_h.any():
        return ("non-finite", f"the reference holds NaN or inf at {int(bad_r.sum())} of {r.size} "
                f"entries ({_where(bad_r)}) where the hand value is finite: the forward returns "
                "NaN or inf at or near this point (a log, sqrt or division at the edge of its "
                "domain?)")
    return ("non-finite", f"the hand value holds NaN or inf at {int(bad_h.sum())} of {h.size} "
            f"entries ({_where(bad_h)})" + (f", the reference at {int(bad_r.sum())}"
                                           if bad_r.any() else ""))


def _single(hand: float, ref: float, dims: Mapping[str, int]) -> tuple[str, str]:
    """One entry (a scalar loss): a named factor is still telling; any other ratio is one
    number off, and one entry cannot tell a factor from an offset."""
    alpha = hand / ref
    # A named factor (and -1, a sign) is telling even on one entry; a ratio near 1 is not: an
    # eps inside a log moves a loss by a relative 1e-7 as easily as by 1e-3, case by case.
    if abs(alpha + 1) <= 1e-6 or any(abs(abs(alpha) - v) <= 1e-6 * v
                                     for v, _ in named_factors(dims)):
        return _factor(alpha, dims)
    relative = (hand - ref) / ref
    # A small constant in a formula (an eps of 1e-8 to 1e-3 inside a log, a clip bound) moves
    # the value by far less than 1%; an overflow or underflow rounded into a clip, a dropped
    # term or a mean for a sum moves it by much more.
    if abs(relative) < 1e-2:
        hint = ("look for a small constant in the formula (an eps inside a log or a "
                "denominator, a clip bound)")
    else:
        hint = ("look for a term added or dropped, a mean for a sum, or a value that overflows "
                "or underflows (an exp of a large argument: subtract the max first; a "
                "probability clipped away from 0)")
    return ("value", f"the single value is {hand:.9g} where the reference gives {ref:.9g}: off by "
            f"{hand - ref:.3g} (relative {relative:.2g}); one entry cannot tell a factor from "
            f"an added term: {hint}")


def _offset(h: np.ndarray, r: np.ndarray, rtol: float, atol: float,
            axes: Sequence[str] | None) -> tuple[str, str] | None:
    """hand - reference constant everywhere, or constant along every axis but one (a bias
    never added, or added twice, is an offset per column), with every entry wrong."""
    diff = h - r
    scale = float(np.abs(r).max(initial=0.0))
    bound = atol * scale + rtol * np.abs(r)
    # An offset (a bias never added) makes every entry wrong; a pattern that leaves some right
    # is something else, even where it happens to repeat along an axis.
    if h.size < 2 or not np.all(np.abs(diff) > bound):
        return None
    if np.all(np.abs(diff - diff.mean()) <= bound):
        return ("offset", f"hand - reference = {float(diff.mean()):.4g} everywhere: a constant "
                "offset (a term added or dropped that does not depend on the entry)")
    for axis in range(h.ndim):
        if h.shape[axis] < 2 or h.size == h.shape[axis]:
            continue
        others = tuple(i for i in range(h.ndim) if i != axis)
        if np.all(np.abs(diff - diff.mean(axis=others, keepdims=True)) <= bound):
            name = _axis_name(axes, axis)
            return ("offset", f"hand - reference depends only on the index along {name}: an "
                    f"offset per entry of {name}, a term the same along every other axis missing "
                    "or extra (a bias never added or added twice; in a gradient, a sum over the "
                    "batch such as a mean's path left out?)")
    return None


def _factor(alpha: float, dims: Mapping[str, int]) -> tuple[str, str]:
    if abs(alpha + 1) <= 1e-6:
        return "sign", "hand = -1 x reference: the sign is flipped"
    sign = "-" if alpha < 0 else ""
    for value, name in named_factors(dims):
        if abs(abs(alpha) - value) <= 1e-6 * value:
            what = f"{sign}{name}" + (f" = {sign}{value:g}" if name not in ("2", "1/2") else "")
            return "factor", f"hand = ({what}) x reference: a constant factor" + \
                (" and a flipped sign" if sign else "")
    if abs(alpha - 1) < 1e-3:
        return "factor", f"hand = {alpha:.9g} x reference: relative error {alpha - 1:.1e} " \
                         "everywhere, like a constant written with too few digits"
    return "factor", f"hand = {alpha:.6g} x reference: a constant factor"


def _layout(h: np.ndarray, r: np.ndarray, rtol: float, atol: float) -> tuple[str, str] | None:
    """Transposed, permuted or flipped (a kernel not rotated by 180 degrees)."""
    if h.ndim >= 2:
        for perm in itertools.permutations(range(h.ndim)):
            if perm != tuple(range(h.ndim)) and h.transpose(perm).shape == r.shape \
                    and _close(h.transpose(perm), r, rtol, atol):
                return "transposed", f"hand.transpose{perm} matches the reference: axes swapped"
        for k in (2, 1):
            for flip_axes in itertools.combinations(range(h.ndim), k):
                if _close(np.flip(h, flip_axes), r, rtol, atol):
                    what = "rotated by 180 degrees" if k == 2 else "reversed"
                    return "flipped", f"hand flipped on axes {flip_axes} matches: the gradient " \
                                      f"is {what} (a missing or extra kernel rotation?)"
    if _close(np.sort(h, axis=None), np.sort(r, axis=None), rtol, atol):
        return "permuted", "hand holds the reference's values in another order (an index mix-up)"
    return None


def _slices(bad: np.ndarray, axes: Sequence[str] | None) -> tuple[str, float]:
    """The axis along which only some slices are wrong (fewest wrong first), and the share of
    entries wrong inside those slices."""
    best = None
    for axis in range(bad.ndim):
        if bad.shape[axis] < 2:
            continue
        wrong = np.flatnonzero(bad.any(axis=tuple(i for i in range(bad.ndim) if i != axis)))
        if 0 < wrong.size < bad.shape[axis]:
            frac = wrong.size / bad.shape[axis]
            if best is None or frac < best[0]:
                best = (frac, axis, wrong)
    if best is None:
        return "", 0.0
    _, axis, wrong = best
    coverage = float(np.take(bad, wrong, axis=axis).mean())
    shown = ", ".join(str(i) for i in wrong[:8]) + (", ..." if wrong.size > 8 else "")
    return (f"only slices [{shown}] of {bad.shape[axis]} along {_axis_name(axes, axis)} are "
            "wrong", coverage)
