"""Kinks along a line: the one test, shared by finite differences and the Taylor test, that tells
whether a piecewise-smooth forward is smooth on a stencil.

Along a line phi(t) = S(p + t v), take the five values phi(0), phi(+-h), phi(+-h/2). For a smooth
phi (a + b t + c t^2/2 + d t^3/6 + ...),

    D = phi(h) - 2 phi(0) + phi(-h)            = c h^2 + O(h^4)
    P = phi(h) - 2 phi(h/2) + phi(0)           = c h^2/4 + d h^3/8 + O(h^4)
    M = phi(-h) - 2 phi(-h/2) + phi(0)         = c h^2/4 - d h^3/8 + O(h^4)

so D - 2 (P + M) = O(h^4), and D - 4P and D - 4M are O(h^3): a small fraction of |D| + 4|P|
(about |d| h / 4|c|) at the steps used here. A kink (a jump k in phi') at distance t on the right
(h/2 <= t <= h) adds A = k (h - t) to D and to P and nothing to M, which leaves -3A in D - 4P:
three fifths of |D| + 4|P|. Kinks on both sides that cancel in one combination show in another
(opposite jumps: -4A in D - 4P; B = 3A: -8A in D - 4M), so the stencil is called kinked when any
of the three combinations exceeds a fifth of its terms plus its rounding noise. Over the dyadic
steps h, h/2, h/4, ... the smallest step that still contains a kink has it in [h/2, h] and marks
it, as soon as its effect A on the stencil is eight value-noises or more.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)
# D - 2(P + M) weighs the five values by 1, 1, 4, 4, 6 (D - 4P by 3, 1, 8, 0, 2): its rounding
# has a standard deviation of at most sqrt(70) = 8.4 times that of one value. 16 value-noises keep
# a smooth stencil from being called kinked by rounding alone (about 8 standard deviations with
# the noise taken as 4 sigma).
NOISE_WEIGHT = 16.0
RELATIVE = 0.2


def value_noise(sigma: float, magnitude: float) -> float:
    """Rounding noise of one value of S: the larger of 4 measured sigmas and 30 eps sum|terms|
    (the same depth allowance as the finite-difference round-off bound)."""
    return max(4.0 * sigma, 30.0 * EPS * magnitude)


def kinked(f0: float, fp: float, fm: float, fp2: float, fm2: float, noise: float) -> bool:
    """Whether phi is not smooth on [-h, h], from phi(0), phi(h), phi(-h), phi(h/2), phi(-h/2)."""
    d = fp - 2.0 * f0 + fm
    p = fp - 2.0 * fp2 + f0
    m = fm - 2.0 * fm2 + f0
    tests = ((d - 2.0 * (p + m), abs(d) + 2.0 * abs(p) + 2.0 * abs(m)),
             (d - 4.0 * p, abs(d) + 4.0 * abs(p)),
             (d - 4.0 * m, abs(d) + 4.0 * abs(m)))
    return any(abs(residual) > NOISE_WEIGHT * noise + RELATIVE * size
               for residual, size in tests)


def rounding_noise(phi, delta: float, flat: float = 0.0) -> float:
    """Standard deviation of the rounding noise of phi(t) = S(p + t v) (after More and Wild's
    ECnoise): seven values spaced ``delta`` apart, where a smooth S changes by far less than its
    rounding, so the fourth differences are noise, with variance 70 sigma^2.

    The stencils sit beside the point, on either side (t in 4..10 delta and -10..-4 delta), and
    the smaller estimate is taken: the point itself may lie on a kink (a tie, a relu at 0),
    whose jump in slope would pass for noise in a stencil around it.

    Where phi takes one value on all fourteen points, its rounding swallowed every change (a
    softmax loss on logits over +-1000 is exactly 0.0: log(1 + 1e-76) rounds to 0): ECnoise
    then determines no noise, and the quantum of S, which S's value no longer shows, is at least
    ``flat`` (the caller's estimate of the rounding of S's intermediates)."""
    sigmas, seen = [], set()
    for side in (1, -1):
        values = np.array([phi(side * j * delta) for j in range(4, 11)])
        seen.update(values.tolist())
        sigmas.append(float(np.sqrt(np.mean(np.diff(values, 4) ** 2) / 70.0)))
    if len(seen) == 1:
        return max(min(sigmas), flat)
    return min(sigmas)
