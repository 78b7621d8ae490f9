"""The Taylor-remainder test (after pyadjoint's ``taylor_test``), on the NumPy forward in float64.

For a direction v over all differentiable inputs, r(h) = |S(p + h v) - S(p) - h <g, v>| is O(h^2)
when g is the gradient and O(h) when it is not. h halves from 1 until r has stayed at the
round-off floor for a few steps; the slope of log r against log h over the smallest steps still
above the floor decides. Points at or under the floor never enter the fit, so round-off cannot
decide the verdict.

A kink (relu, max, abs, clip) at distance t along v also makes r first order, but only for h > t. So
S is evaluated at -h too, and the kink test of :mod:`handgrad.oracles.numerics.kinks` marks every
step whose stencil [-h, h] is not smooth; only steps below the smallest marked one (the kink-free
radius) enter the fit. Where no step is left, or the point lies on a kink, the result says so
(unreliable) instead of judging the gradient."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from handgrad.oracles.numerics.kinks import kinked, rounding_noise, value_noise
from handgrad.tolerances import TAYLOR2_MIN_SLOPE, TAYLOR_MIN_SLOPE

HALVINGS = 48
FIT_POINTS = 4
# The walk stops once r has been at the floor, on smooth stencils, this many steps in a row: a
# right gradient's r falls like h^2 and a wrong one's like h, so neither comes back above it.
STOP_AFTER = 3
# Rounding of S = sum(dout * out) is about eps times the sum of |terms| times the depth of the
# computation; 1e3 covers that depth with room, and the fit needs r clear of that noise. Where S
# cancels internally its measured noise sigma is larger; 100 sigma keeps the fit clear of it.
FLOOR_FACTOR = 1e3
NOISE_FLOOR = 100.0
# Within a kink-free radius h_r where r stays at the floor, a relative error d of the gradient
# would leave r(h_r) = d |<g, v>| h_r; the test then resolves d >= floor / (h_r |<g, v>|). Below
# 1e-3 that still separates the errors this test is for (the float64 oracles resolve 1e-9).
RESOLVED = 1e-3


@dataclass(frozen=True)
class TaylorResult:
    status: str  # "pass", "fail" or "unreliable"
    slope: float
    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    floors: tuple[float, ...]
    kinks: tuple[bool, ...]  # per step: the stencil [-h, h] straddles a kink (where tested)
    fit: tuple[int, ...]  # indices of the steps the slope was fitted over
    message: str
    order: int = 1  # 1: the gradient's model; 2: with the curvature h^2/2 <v, H v>


def _clean_from(kinks: tuple[bool, ...]) -> int:
    """The first index from which no step is marked kinked."""
    marked = [i for i, k in enumerate(kinks) if k]
    return marked[-1] + 1 if marked else 0


def taylor_test(evaluate_all, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                rng: np.random.Generator, sigma: float | None = None,
                curvature: Callable[[dict[str, np.ndarray]], float] | None = None
                ) -> TaylorResult:
    """``evaluate_all(perturbed) -> (S, magnitude)`` with ``perturbed`` a dict of inputs;
    ``sigma``: the rounding noise of S, measured here when not given. With ``curvature``
    (``direction -> <v, H v>``), the second-order test: r(h) = |S(p + h v) - S(p) - h <g, v> -
    h^2/2 <v, H v>| is O(h^3) with the right H v (slope 3), O(h^2) with a wrong one, O(h) with a
    wrong gradient.

    The walk goes down the steps on the +h side first; the -h side, which only the kink test
    needs, is evaluated from the steps the slope would be fitted over downwards, and further
    down while the smallest stencils still straddle a kink."""
    direction = {}
    for k, p in params.items():
        rms = float(np.sqrt(np.mean(np.square(p)))) if p.size else 0.0
        direction[k] = rng.standard_normal(p.shape) * (rms if rms > 0 else 1.0)

    def at(t: float) -> tuple[float, float]:
        s, mag = evaluate_all({k: params[k] + t * direction[k] for k in params})
        return float(s), mag

    s0, mag0 = at(0.0)
    if sigma is None:
        sigma = rounding_noise(lambda t: at(t)[0], 1e-6)
    slope_term = float(sum(np.vdot(grads[k], direction[k]) for k in params))
    order = 1 if curvature is None else 2
    curve_term = 0.0 if curvature is None else 0.5 * float(curvature(direction))
    eps = float(np.finfo(np.float64).eps)
    steps, rems, floors, plus, mags = [], [], [], [], []
    minus: dict[int, tuple[float, float]] = {}

    def step() -> bool:
        """One more (smaller) step on the +h side; whether its remainder is above the floor."""
        h = steps[-1] / 2 if steps else 1.0
        sp, magp = at(h)
        r = abs(sp - s0 - h * slope_term - h * h * curve_term)
        steps.append(h)
        rems.append(r)
        floors.append(max(FLOOR_FACTOR * eps * (mag0 + magp + abs(h * slope_term)
                                                + abs(h * h * curve_term)),
                          NOISE_FLOOR * sigma))
        plus.append(sp)
        mags.append(max(mag0, magp))
        return bool(r > floors[-1] and np.isfinite(r))

    def marked(i: int) -> bool:
        for j in (i, i + 1):
            if j not in minus:
                minus[j] = at(-steps[j])
        return bool(kinked(s0, plus[i], minus[i][0], plus[i + 1], minus[i + 1][0],
                           value_noise(sigma, max(mags[i], mags[i + 1], minus[i][1],
                                                  minus[i + 1][1]))))

    quiet = 0
    while len(steps) < HALVINGS and quiet < STOP_AFTER:
        quiet = 0 if step() else quiet + 1
    above = [i for i in range(len(steps)) if rems[i] > floors[i] and np.isfinite(rems[i])]
    first = max((above[-FIT_POINTS:] or [len(steps) - 1])[0] - 1, 0)
    flags: dict[int, bool] = {}
    while True:
        for i in range(first, len(steps) - 1):
            if i not in flags:
                flags[i] = marked(i)
        last = max((i for i, f in flags.items() if f), default=-1)
        tail = [i for i in range(last + 1, len(steps))]
        settled = len(tail) > STOP_AFTER and not any(
            rems[i] > floors[i] for i in tail[-STOP_AFTER:])
        if last < 0 or settled or len(steps) >= HALVINGS:
            break
        step()  # the smallest stencils still straddle a kink: go further down
    # The smallest step has no half step to test with: it inherits its neighbour's mark.
    kinks = tuple(flags.get(i, False) for i in range(len(steps) - 1)) + (
        flags.get(len(steps) - 2, False),)
    start = max(_clean_from(kinks), first)
    above = [i for i in range(start, len(steps)) if rems[i] > floors[i] and np.isfinite(rems[i])]
    fit = tuple(above[-FIT_POINTS:])
    kink_seen = any(kinks)

    def result(status: str, slope: float, message: str) -> TaylorResult:
        return TaylorResult(status, slope, tuple(steps), tuple(rems), tuple(floors), kinks, fit,
                            message, order)

    model = "first-order" if order == 1 else "second-order"

    def resolution_at(i: int) -> float:
        """The relative error of the tested term that the floor at step i still resolves."""
        term = steps[i] * abs(slope_term) if order == 1 else steps[i] ** 2 * abs(curve_term)
        return floors[i] / max(term, 1e-300)

    if not kink_seen and not any(r > f and np.isfinite(r) for r, f in zip(rems, floors)):
        if resolution_at(0) > RESOLVED:
            term = "h <g, v>" if order == 1 else "h^2/2 <v, H v>"
            return result("unreliable", float("nan"),
                          f"remainder at the round-off floor at every step, and so is the "
                          f"{model} term {term} itself (the loss rounds away a change that "
                          "small): too small for the Taylor test to judge")
        return result("pass", float("nan"), "remainder at the round-off floor at every step: "
                      f"the {model} model is exact to working precision")
    if start >= len(steps):
        return result("unreliable", float("nan"),
                      f"the point lies on a kink along the test direction (the stencil [-h, h] "
                      f"is not smooth down to h = {steps[-1]:.1e}): a one-sided remainder cannot "
                      "judge a gradient there; the finite-difference check judges it as a "
                      "subgradient")
    where = "" if not kink_seen else (f" (steps above h = {steps[start]:.1e} left out: the "
                                      "forward is not smooth there, a kink or strong curvature)")
    if len(fit) >= 3:
        logh, logr = np.log([steps[i] for i in fit]), np.log([rems[i] for i in fit])
        slope = float(np.polyfit(logh, logr, 1)[0])
        ok = slope >= (TAYLOR_MIN_SLOPE if order == 1 else TAYLOR2_MIN_SLOPE)
        if order == 1:
            verdict = 'O(h^2): gradient consistent' if ok else 'O(h): gradient wrong'
        else:
            verdict = ("O(h^3): H v consistent" if ok else "O(h^2): H v wrong"
                       if slope >= TAYLOR_MIN_SLOPE else "O(h): the gradient is wrong")
        return result("pass" if ok else "fail", slope,
                      f"remainder slope {slope:.2f} over h in [{steps[fit[-1]]:.1e}, "
                      f"{steps[fit[0]]:.1e}]{where} ({verdict})")
    if fit:
        return result("unreliable", float("nan"),
                      f"only {len(fit)} kink-free steps above the round-off floor{where}; no "
                      "slope to fit")
    resolution = resolution_at(start)
    if resolution <= RESOLVED:
        return result("pass", float("nan"),
                      f"remainder at the round-off floor at every kink-free step{where}: the "
                      f"{model} model is exact there (resolves relative errors >= "
                      f"{resolution:.0e})")
    return result("unreliable", float("nan"),
                  f"remainder at the round-off floor at every kink-free step{where}, too close "
                  f"to judge (it would resolve only relative errors >= {resolution:.0e})")
