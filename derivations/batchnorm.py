"""Batch normalisation in training mode: see ``batchnorm.md`` for the math.

Shapes: x (N, D) with gamma, beta (D,), statistics over the batch axis; or x (N, C, H, W) with
gamma, beta (C,), statistics over N, H and W. F (D or C) names the features below. m is the
number of values each statistic reduces over (N, or N*H*W). The variance is the biased one
(divide by m), as torch uses in training. The page writes y as O, C as D, var as nu, xc as xi
and inv_std as r (one letter, one meaning across the catalogue: notation.md).

The records keep m >= 3: at m = 2 dL/dx is of the order of eps / var, nearly degenerate.
``tests/test_batchnorm.py`` checks that the staged (B12) and compact (B13) dL/dx agree to
rounding. The reference computes mu and var with ``torch.var_mean``, where the variance depends on
x directly and not through mu; autograd's dL/dmu is then the direct term of (B11) alone, which
equals the hand value because the other term vanishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import batchnorm as ref

EPS = 1e-5


@dataclass
class Cache:
    gamma: np.ndarray    # broadcast against x: (1, D) or (1, C, 1, 1)
    xc: np.ndarray       # x - mu, x's shape
    inv_std: np.ndarray  # 1 / sqrt(var + eps), broadcast like gamma
    xhat: np.ndarray     # x's shape
    axes: tuple[int, ...]
    m: int


def reduced_axes(ndim: int) -> tuple[int, ...]:
    """The axes a statistic reduces over: the batch, and the spatial axes of (N, C, H, W)."""
    return (0,) if ndim == 2 else (0, 2, 3)


def per_feature(v: np.ndarray, ndim: int) -> np.ndarray:
    """A (F,) vector as (1, F) or (1, F, 1, 1), to broadcast against x."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def feature_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum_i a_i b_i per feature (axis 1) over the other axes, kept broadcastable; no product
    array is made (einsum), which spares an x-sized allocation per call."""
    axes = "nfhw"[: a.ndim]
    return per_feature(np.einsum(f"{axes},{axes}->f", a, b), a.ndim)


def forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, eps: float = EPS,
            correction: int = 0):
    """y (x's shape) and the cache; ``correction`` 1 divides the variance by m - 1 (a mistake)."""
    axes = reduced_axes(x.ndim)
    m = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)                                  # (B1)
    xc = x - mu                                                            # (B2)
    var = feature_dot(xc, xc) / (m - correction)                           # (B3)
    inv_std = 1.0 / np.sqrt(var + eps)                                     # (B4)
    xhat = xc * inv_std                                                    # (B5)
    g = per_feature(gamma, x.ndim)
    y = g * xhat                                                           # (B6)
    y += per_feature(beta, x.ndim)                                         # (B6)
    return y, Cache(g, xc, inv_std, xhat, axes, m)


def parameter_grads(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    dbeta = dy.sum(axis=c.axes)                                            # (B7)
    dgamma = feature_dot(dy, c.xhat).reshape(-1)                           # (B8)
    return {"beta": dbeta, "gamma": dgamma}


def staged(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dL/dxhat, dL/dvar, dL/dmu (keepdims), the chain of (B1)-(B5) taken backwards."""
    dxhat = dy * c.gamma                                                   # (B9)
    dvar = feature_dot(dxhat, c.xc) * (-0.5 * c.inv_std ** 3)             # (B10)
    dmu = (-(dxhat.sum(axis=c.axes, keepdims=True)) * c.inv_std
           + dvar * (-2.0 / c.m) * c.xc.sum(axis=c.axes, keepdims=True))  # (B11)
    return {"xhat": dxhat, "var": dvar, "mu": dmu}


def dx_staged(s: dict[str, np.ndarray], c: Cache, var_divisor: int | None = None) -> np.ndarray:
    """dL/dx from the three paths x -> xhat, x -> var, x -> mu. ``var_divisor`` replaces m in
    the variance path (m - 1 is a mistake)."""
    k = c.m if var_divisor is None else var_divisor
    return s["xhat"] * c.inv_std + s["var"] * (2.0 / k) * c.xc + s["mu"] / c.m  # (B12)


def dx_compact(dy: np.ndarray, c: Cache, dbeta: np.ndarray, dgamma: np.ndarray) -> np.ndarray:
    """dL/dx = gamma / (m sigma) (m dy - sum dy - xhat sum(dy xhat)), with the sums dbeta and
    dgamma already computed for the parameters; in place, one x-sized temporary."""
    shape = c.gamma.shape
    dx = c.m * dy                                                          # (B13)
    dx -= dbeta.reshape(shape)                                             # (B13)
    dx -= c.xhat * dgamma.reshape(shape)                                   # (B13)
    dx *= c.gamma * c.inv_std / c.m                                        # (B13)
    return dx


def squeezed(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-feature gradients of the statistics as (F,), the shape the reference gives them."""
    return {k: (v.reshape(-1) if k in ("var", "mu") else v) for k, v in grads.items()}


def backward(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dy (x's shape) -> dL/dxhat, dL/dvar, dL/dmu, dL/dgamma, dL/dbeta and dL/dx (compact)."""
    params = parameter_grads(dy, c)
    dx = dx_compact(dy, c, params["beta"], params["gamma"])
    return {**squeezed(staged(dy, c)), **params, "x": dx}


def gamma_sampler(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Scales of either sign, |gamma| in [0.5, 1.5): none near zero, which would switch a
    feature's gradient off."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def flop_count(d) -> float:
    """Per element of x: forward 7 (mean, centre, square and sum, scale, gamma, beta), backward
    13 (dbeta 1, dgamma 2, dxhat 1, dvar 2, dmu 2, compact dx 5); per-feature terms left out."""
    return 20.0 * d["N"] * d.get("D", d.get("C", 1)) * d.get("H", 1) * d.get("W", 1)


FLAT = {"x": ("N", "D"), "gamma": ("D",), "beta": ("D",)}
SPATIAL = {"x": ("N", "C", "H", "W"), "gamma": ("C",), "beta": ("C",)}
TAGS = {"xhat": "B9", "var": "B10", "mu": "B11", "gamma": "B8", "beta": "B7", "x": "B13"}


def make(spatial: bool, **changes) -> Derivation:
    """The (N, D) record, or the (N, C, H, W) one; ``changes`` overrides fields."""
    inputs = SPATIAL if spatial else FLAT
    feature = inputs["gamma"]
    fields = {
        "name": "batchnorm-spatial" if spatial else "batchnorm",
        "forward": forward,
        "backward": backward,
        "reference": partial(ref.batch_norm, eps=EPS),
        "inputs": inputs,
        # m >= 3 in every case: at m = 2 the two normalised values are +-sqrt(var / (var + eps))
        # and dL/dx shrinks to O(eps / var), nearly the degenerate m = 1 where it is zero.
        "dims": ({"N": (2, 3), "C": (1, 3), "H": (1, 3), "W": (2, 3)} if spatial
                 else {"N": (3, 6), "D": (1, 5)}),
        "output": inputs["x"],
        "intermediates": ("xhat", "var", "mu"),
        "intermediate_shapes": {"xhat": inputs["x"], "var": feature, "mu": feature},
        "tags": TAGS,
        "samplers": {"gamma": gamma_sampler},
        "variant": {"layout": "(N, C, H, W), statistics over N, H, W" if spatial
                    else "(N, D), statistics over N", "eps": str(EPS)},
        "complex_step": True,
        "flops": flop_count,
        "bench": ({"N": 32, "C": 64, "H": 16, "W": 16},) if spatial else ({"N": 256, "D": 512},),
        "symbols": {"\\xi": "xc", "r": "inv_std", "\\nu": "var", "O": "(output)", "m": "N"},
        # the page indexes samples x_i of an (N, D) batch; over maps i runs over N, H and W
        # together, which the page's index notation does not write
        "equations": () if spatial else None,
    }
    return Derivation(**{**fields, **changes})


RECORDS = [make(spatial=False), make(spatial=True)]
