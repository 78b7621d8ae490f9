"""Finite-difference oracles on the NumPy forward, in float64 (or complex128 for the complex step).

Central differences with Richardson extrapolation: D(h) = (S(x + h) - S(x - h)) / 2h has error
c h^2 + O(h^4), so R = (4 D(h/2) - D(h)) / 3 cancels the h^2 term, and |D(h/2) - D(h)| / 3, the
size of that correction, estimates what is left. The step is eps^(1/5) / 4 * max(1, |x|)
(1.8e-4 in float64): eps^(1/5) balances the O(h^4) truncation against the eps/h round-off, and
the quarter keeps perturbations inside the 1e-3 margin the sampler leaves around kinks. The error
bound adds the round-off, 30 eps sum|terms| / h. A stencil that straddles a kink (the test of
:mod:`handgrad.oracles.numerics.kinks`) is retried with smaller steps; at a point on a kink the
one-sided differences bracket the valid subgradients. Where the bound itself exceeds the tolerance,
the result says so instead of judging the derivation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from handgrad.oracles.numerics.kinks import kinked, value_noise
from handgrad.record import Derivation

EPS = float(np.finfo(np.float64).eps)
STEP = 0.25 * EPS ** 0.2
# R = (4 D(h/2) - D(h)) / 3 weighs the four evaluations by 3/h in all; each carries a rounding
# error of about depth * eps * sum|terms|, and 10 layers of depth is generous here. A loss that
# cancels internally (log-sum-exp minus the logit) rounds at the size of its intermediates, not
# of its value, so the measured noise of S (:func:`handgrad.oracles.numerics.kinks.rounding_noise`)
# also enters: 10 sigma / h bounds R's noise, whose standard deviation is about 1.9 sigma / h.
ROUNDOFF_FACTOR = 30.0
NOISE_FACTOR = 10.0
COMPLEX_STEP = 1e-30
# A stencil that straddles a kink is retried at h/16, h/256 and h/4096 (4e-8 relative): below
# that the round-off bound eps |S| / h exceeds the tolerance anyway.
SHRINK = 16.0
SHRINKS = 3


@dataclass(frozen=True)
class Estimate:
    """Finite-difference derivatives, the two parts of their error bound, the one-sided
    estimates (which bracket the derivative's one-sided limits at a kink), and whether the
    smallest step tried still straddled a kink (see :mod:`handgrad.oracles.numerics.kinks`)."""

    value: np.ndarray
    truncation: np.ndarray
    roundoff: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    kink: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return self.truncation + self.roundoff

    @classmethod
    def join(cls, parts: list[Estimate]) -> Estimate:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts])
                     for f in dataclasses.fields(cls)))


def objective(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
              dtype=np.float64) -> Callable[[str, np.ndarray], tuple[complex, float]]:
    """S(name, value) = sum(dout * out) with input ``name`` replaced by ``value``.

    Returns (S, magnitude) where magnitude = sum |dout * out|, the size of the terms whose
    rounding sets the noise floor of S.
    """
    base = {k: (np.array(v, dtype=dtype) if np.issubdtype(v.dtype, np.floating) else v.copy())
            for k, v in inputs.items()}
    up = np.asarray(dout, dtype=np.float64)

    def evaluate(name: str, value: np.ndarray):
        args = {k: (value if k == name else v.copy()) for k, v in base.items()}
        out, _ = record.forward(**args)
        terms = up * np.asarray(out)
        return terms.sum(), float(np.abs(terms).sum())

    return evaluate


def _richardson(f: Callable[[float], tuple[float, float]], h: float, centre: tuple[float, float],
                noise: float = 0.0) -> tuple:
    """(R, truncation bound, round-off bound, forward and backward one-sided differences,
    kinked) at the largest step h / SHRINK^j (j <= SHRINKS) whose stencil is kink-free.

    A stencil that straddles a kink is retried with a smaller step, so that the differences stay
    on one side of it; ``kinked`` is True when even the smallest step straddles one (the point
    lies on a kink, or within h / SHRINK^SHRINKS of it)."""
    f0, m0 = centre
    for attempt in range(SHRINKS + 1):
        (fp, mp), (fm, mm) = f(h), f(-h)
        (fp2, mp2), (fm2, mm2) = f(h / 2), f(-h / 2)
        magnitude = max(mp, mm, mp2, mm2, m0)
        kink = kinked(f0, fp, fm, fp2, fm2, value_noise(noise, magnitude))
        if not kink or attempt == SHRINKS:
            break
        h /= SHRINK
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    roundoff = max(ROUNDOFF_FACTOR * EPS * magnitude, NOISE_FACTOR * noise) / h
    return ((4 * d2 - d1) / 3, abs(d2 - d1) / 3, roundoff, (fp2 - f0) / (h / 2),
            (f0 - fm2) / (h / 2), kink)


def _real(evaluate, name: str, value: np.ndarray) -> tuple[float, float]:
    s, magnitude = evaluate(name, value)
    return float(np.real(s)), magnitude


def _estimate(rows: list[tuple]) -> Estimate:
    if not rows:
        return Estimate(*(np.zeros(0) for _ in range(5)), np.zeros(0, dtype=bool))
    columns = [np.array(col).reshape(-1) for col in zip(*rows)]
    return Estimate(*(c.astype(np.float64) for c in columns[:5]), columns[5].astype(bool))


def elementwise(evaluate, name: str, x: np.ndarray, indices=None, noise: float = 0.0,
                centre: tuple[float, float] | None = None) -> Estimate:
    """Per-element Richardson central differences of S with respect to input ``name``;
    ``centre``: (S, magnitude) at x when already known."""
    x = np.asarray(x, dtype=np.float64)
    flat_indices = range(x.size) if indices is None else indices
    centre = centre or _real(evaluate, name, x)
    rows = []
    for i in flat_indices:
        h = STEP * max(1.0, abs(x.flat[i]))

        def f(t, i=i):
            xp = x.copy()
            xp.flat[i] += t
            return _real(evaluate, name, xp)

        rows.append(_richardson(f, h, centre, noise))
    return _estimate(rows)


def directional(evaluate, name: str, x: np.ndarray, v: np.ndarray, noise: float = 0.0,
                centre: tuple[float, float] | None = None) -> Estimate:
    """Richardson estimate of d/dt S(x + t v) at t = 0, i.e. <dS/dx, v>."""
    x = np.asarray(x, dtype=np.float64)
    h = STEP * max(1.0, float(np.abs(x).max(initial=0.0))) / max(float(np.abs(v).max()), 1e-300)
    rows = [_richardson(lambda t: _real(evaluate, name, x + t * v), h,
                        centre or _real(evaluate, name, x), noise)]
    return _estimate(rows)


def complex_step(evaluate, name: str, x: np.ndarray, directions: np.ndarray | None = None):
    """Im S(x + i h e) / h: derivatives exact to rounding, no subtraction, one call each.

    ``directions`` (k, *x.shape) gives directional derivatives; None gives every element.
    Valid only where the forward is holomorphic in ``x`` (no abs, max or comparisons on it).
    """
    x = np.asarray(x, dtype=np.complex128)
    if directions is None:
        out = np.zeros(x.size)
        for i in range(x.size):
            xp = x.copy()
            xp.flat[i] += 1j * COMPLEX_STEP
            out[i] = np.imag(evaluate(name, xp)[0]) / COMPLEX_STEP
        return out
    return np.array([np.imag(evaluate(name, x + 1j * COMPLEX_STEP * v)[0]) / COMPLEX_STEP
                     for v in directions])
