"""Central differences of an array-valued function along a line, for the checks of hand JVPs and
HVPs: phi(t) = out(p + t v) (the tangent of the output) or phi(t) = grad(p + t v) (the record's
own backward, whose derivative along v is H v).

The same Richardson estimate as :mod:`handgrad.oracles.numerics.fd`, entry by entry:
D(h) = (phi(h) - phi(-h)) / 2h, R = (4 D(h/2) - D(h)) / 3, truncation bound |D(h/2) - D(h)| / 3.
The round-off bound of an entry is max(30 eps s, 10 sigma) / h, where s is the largest |phi| over
the entry's tensor (the entries of a gradient are sums of terms of that size, whose rounding does
not shrink with the entry) and sigma the entry's measured rounding noise (:func:`noise`, More and
Wild's ECnoise, vectorised). The kink test of :mod:`handgrad.oracles.numerics.kinks` runs on every
entry: a stencil that straddles a kink in any entry (a relu changing side: a kink of the output, a
jump of the gradient) is retried at h/16, h/256, h/4096; entries that still straddle one are
marked, and their one-sided differences kept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from handgrad.oracles.numerics.fd import (
    EPS,
    NOISE_FACTOR,
    ROUNDOFF_FACTOR,
    SHRINK,
    SHRINKS,
    STEP,
    Estimate,
)
from handgrad.oracles.numerics.kinks import kinked, value_noise

Line = Callable[[float], np.ndarray]  # t -> the flattened float64 values at p + t v
# ECnoise spacing relative to the step: far below any curvature, far above eps.
NOISE_SPACING = 1e-6


def step(point: dict[str, np.ndarray], direction: dict[str, np.ndarray]) -> float:
    """The first step along ``direction``: fd.STEP relative to the point's size, in units of the
    direction's largest entry (so that no input moves by more than fd.STEP * max(1, |x|))."""
    size = max([1.0] + [float(np.abs(x).max(initial=0.0)) for x in point.values()])
    largest = max([float(np.abs(v).max(initial=0.0)) for v in direction.values()] + [1e-300])
    return STEP * size / largest


def noise(phi: Line, spacing: float) -> np.ndarray:
    """Per entry, the standard deviation of the rounding noise of phi near t = 0: fourth
    differences of seven values ``spacing`` apart on each side of the point (variance 70
    sigma^2), the smaller side taken (the point itself may lie on a kink)."""
    sigmas = []
    for side in (1, -1):
        values = np.stack([phi(side * j * spacing) for j in range(4, 11)])
        sigmas.append(np.sqrt(np.mean(np.diff(values, 4, axis=0) ** 2, axis=0) / 70.0))
    return np.minimum(*sigmas)


def scales_of(sizes: list[int], values: np.ndarray) -> np.ndarray:
    """Per entry, the largest |value| over the tensor it belongs to (``sizes``: entries per
    tensor, in order)."""
    out = np.empty_like(values)
    start = 0
    for n in sizes:
        out[start:start + n] = np.abs(values[start:start + n]).max(initial=0.0)
        start += n
    return out


def derivative(phi: Line, h: float, sizes: list[int] | None = None) -> Estimate:
    """The Richardson estimate of phi'(0), entry by entry, with its error bound and kinks."""
    f0 = phi(0.0)
    sizes = sizes or [f0.size]
    sigma = noise(phi, NOISE_SPACING * h)
    kinked_entries = np.vectorize(kinked, otypes=[bool])
    for attempt in range(SHRINKS + 1):
        fp, fm, fp2, fm2 = phi(h), phi(-h), phi(h / 2), phi(-h / 2)
        magnitude = scales_of(sizes, np.max(np.abs(np.stack([f0, fp, fm, fp2, fm2])), axis=0))
        value_noises = np.vectorize(value_noise, otypes=[float])(sigma, magnitude)
        kink = kinked_entries(f0, fp, fm, fp2, fm2, value_noises)
        if not kink.any() or attempt == SHRINKS:
            break
        h /= SHRINK
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    roundoff = np.maximum(ROUNDOFF_FACTOR * EPS * magnitude, NOISE_FACTOR * sigma) / h
    return Estimate((4 * d2 - d1) / 3, np.abs(d2 - d1) / 3, roundoff, (fp2 - f0) / (h / 2),
                    (f0 - fm2) / (h / 2), kink)
