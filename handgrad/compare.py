"""Elementwise comparison of a hand tensor with a reference tensor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """How far ``hand`` is from ``ref``; every figure is computed, none is assumed."""

    passed: bool
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    hand_value: float
    ref_value: float
    n_bad: int
    size: int
    rtol: float
    atol: float
    scale: float


def compare(hand: np.ndarray, ref: np.ndarray, rtol: float, atol: float,
            scale: float | None = None, allowance: np.ndarray | float = 0.0) -> Comparison:
    """Pass when |hand - ref| <= atol * scale + rtol * |ref| + allowance, elementwise.

    ``scale`` defaults to max |ref|; ``allowance`` is an extra per-element bound (the error
    estimate of a finite-difference reference). Shapes must already agree.
    """
    h = np.asarray(hand, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(r).max()) if r.size else 0.0
    err = np.abs(h - r)
    err = np.where(np.isnan(err), np.inf, err)
    bound = atol * scale + rtol * np.abs(r) + allowance
    bad = err > bound
    if r.size == 0:
        return Comparison(True, 0.0, 0.0, (), 0.0, 0.0, 0, 0, rtol, atol, scale)
    # The worst element is the one furthest past its own bound, not the largest raw error.
    excess = err - bound
    flat = int(np.argmax(excess))
    index = tuple(int(i) for i in np.unravel_index(flat, r.shape))
    denom = np.abs(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(denom > atol * scale, err / denom, 0.0)
    # Against a reference that is zero (or below the absolute floor) a relative error means
    # nothing; where such an entry fails, its relative error is unbounded, never 0.
    rel = np.where((bad & ~(denom > atol * scale)) | np.isinf(err), np.inf, rel)
    return Comparison(
        passed=not bad.any(),
        max_abs=float(err.max()),
        max_rel=float(rel.max()),
        worst_index=index,
        hand_value=float(h[index]) if h.ndim else float(h),
        ref_value=float(r[index]) if r.ndim else float(r),
        n_bad=int(bad.sum()),
        size=int(r.size),
        rtol=rtol,
        atol=atol,
        scale=scale,
    )
