"""The Taylor-remainder test (after pyadjoint's ``taylor_test``), on the NumPy forward in float64.

For a direction v over all differentiable inputs, r(h) = |S(p + h v) - S(p) - h <g, v>| is O(h^2)
when g is the gradient and O(h) when it is not. h halves from 1 until r reaches the round-off
floor; the slope of log r against log h over the smallest steps still above the floor decides.
Points at or under the floor never enter the fit, so round-off cannot decide the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handgrad.tolerances import TAYLOR_MIN_SLOPE

HALVINGS = 48
FIT_POINTS = 4
# Rounding of S = sum(dout * out) is about eps times the sum of |terms| times the depth of the
# computation; 1e3 covers that depth with room, and the fit needs r clear of that noise. Where S
# cancels internally its measured noise sigma is larger; 100 sigma keeps the fit clear of it.
FLOOR_FACTOR = 1e3
NOISE_FLOOR = 100.0


@dataclass(frozen=True)
class TaylorResult:
    status: str  # "pass", "fail" or "unreliable"
    slope: float
    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    floor: float
    message: str


def taylor_test(evaluate_all, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                rng: np.random.Generator) -> TaylorResult:
    """``evaluate_all(perturbed) -> (S, magnitude)`` with ``perturbed`` a dict of inputs."""
    direction = {}
    for k, p in params.items():
        rms = float(np.sqrt(np.mean(np.square(p)))) if p.size else 0.0
        direction[k] = rng.standard_normal(p.shape) * (rms if rms > 0 else 1.0)
    s0, mag0 = evaluate_all(params)
    values = [evaluate_all({k: params[k] + j * 1e-6 * direction[k] for k in params})[0]
              for j in range(-3, 4)]
    sigma = float(np.sqrt(np.mean(np.diff(values, 4) ** 2) / 70.0))
    slope_term = float(sum(np.vdot(grads[k], direction[k]) for k in params))
    eps = float(np.finfo(np.float64).eps)
    steps, rems, above = [], [], []
    floor = 0.0
    h = 1.0
    for _ in range(HALVINGS):
        s, mag = evaluate_all({k: params[k] + h * direction[k] for k in params})
        r = abs(float(s) - float(s0) - h * slope_term)
        floor = max(FLOOR_FACTOR * eps * (mag0 + mag + abs(h * slope_term)), NOISE_FLOOR * sigma)
        steps.append(h)
        rems.append(r)
        if r > floor and np.isfinite(r):
            above.append((h, r))
        elif above:
            break
        h /= 2
    if not above:
        return TaylorResult("pass", float("nan"), tuple(steps), tuple(rems), floor,
                            "remainder at the round-off floor at every step: the first-order "
                            "model is exact to working precision")
    fit = above[-FIT_POINTS:]
    if len(fit) < 3:
        return TaylorResult("unreliable", float("nan"), tuple(steps), tuple(rems), floor,
                            f"only {len(fit)} steps above the round-off floor; no slope to fit")
    logh, logr = np.log([p[0] for p in fit]), np.log([p[1] for p in fit])
    slope = float(np.polyfit(logh, logr, 1)[0])
    ok = slope >= TAYLOR_MIN_SLOPE
    msg = (f"remainder slope {slope:.2f} over h in [{fit[-1][0]:.1e}, {fit[0][0]:.1e}] "
           f"({'O(h^2): gradient consistent' if ok else 'O(h): gradient wrong'})")
    return TaylorResult("pass" if ok else "fail", slope, tuple(steps), tuple(rems), floor, msg)
