"""One-hidden-layer MLP, section 2 of the source, corrected: see ``mlp.md`` for the math.

Shapes: x (N, d), W1 (M, d), b1 (M,), W2 (C, M), b2 (C,); labels y (N,) for cross-entropy,
targets y (N, C) for L2. The loss is summed over the batch; lam >= 0 decays W1 and W2 only.
The page writes d as D and the hidden activation z as h (one letter, one meaning across the
catalogue: see notation.md).

``dout`` is the upstream gradient of the harness, which differentiates dout * L for a random
scalar dout: every gradient below carries that factor, the decay terms included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import mlp as ref

LAM = 0.1


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


# Each activation: (f, f' expressed through the pre-activation a and the value f(a)).
ACTIVATIONS = {
    "sigmoid": (sigmoid, lambda a, fa: fa * (1.0 - fa)),
    "tanh": (np.tanh, lambda a, fa: 1.0 - fa * fa),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, fa: (a > 0).astype(a.dtype)),
    "identity": (lambda a: a, lambda a, fa: np.ones_like(a)),
}


@dataclass
class Cache:
    x: np.ndarray
    target: np.ndarray
    W1: np.ndarray
    W2: np.ndarray
    a1: np.ndarray
    z: np.ndarray
    a2: np.ndarray
    yhat: np.ndarray
    loss: str
    f1: str
    f2: str
    lam: float


def softmax(a: np.ndarray) -> np.ndarray:
    """Row softmax of a: (N, C). The shift by the real row maximum keeps it holomorphic."""
    e = np.exp(a - a.real.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(x, y, W1, b1, W2, b2, *, loss: str, f1: str, f2: str, lam: float):
    """Loss (a 0-d array) of the batch; ``y`` is labels (N,) for "ce", targets (N, C) for "l2"."""
    a1 = x @ W1.T + b1                                   # (M1)
    z = ACTIVATIONS[f1][0](a1)                           # (M2)
    a2 = z @ W2.T + b2                                   # (M3)
    decay = 0.5 * lam * ((W1 * W1).sum() + (W2 * W2).sum())
    if loss == "ce":
        yhat = softmax(a2)                               # (M4)
        data = -np.log(yhat[np.arange(len(y)), y]).sum()  # (M5)
    else:
        yhat = ACTIVATIONS[f2][0](a2)                    # (M4')
        data = 0.5 * ((yhat - y) ** 2).sum()             # (M5')
    cache = Cache(x, y, W1, W2, a1, z, a2, yhat, loss, f1, f2, lam)
    return data + decay, cache


def dloss_dyhat(dout, c: Cache) -> np.ndarray:
    """dL/dyhat: (N, C)."""
    if c.loss == "ce":
        onehot = np.zeros_like(c.yhat)
        onehot[np.arange(len(c.target)), c.target] = 1.0
        return -dout * onehot / c.yhat                   # (M6)
    return dout * (c.yhat - c.target)                    # (M6')


def dyhat_da2(dyhat: np.ndarray, c: Cache) -> np.ndarray:
    """Vector-Jacobian product of the output map: the full softmax Jacobian, not its diagonal."""
    if c.loss == "ce":
        return c.yhat * (dyhat - (dyhat * c.yhat).sum(axis=1, keepdims=True))  # (M7)
    return dyhat * ACTIVATIONS[c.f2][1](c.a2, c.yhat)     # (M7')


def backward(dout, c: Cache) -> dict[str, np.ndarray]:
    dyhat = dloss_dyhat(dout, c)
    return {"yhat": dyhat, **backward_from_yhat(dout, dyhat, c)}


def backward_from_yhat(dout, dyhat: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    da2 = dyhat_da2(dyhat, c)
    return {"a2": da2, **backward_from_a2(dout, da2, c)}


def backward_from_a2(dout, da2: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    dW2 = da2.T @ c.z + dout * c.lam * c.W2             # (M8)
    db2 = da2.sum(axis=0)                                # (M9)
    dz = da2 @ c.W2                                      # (M10)
    return {"W2": dW2, "b2": db2, "z": dz, **backward_from_z(dout, dz, c)}


def backward_from_z(dout, dz: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    da1 = dz * ACTIVATIONS[c.f1][1](c.a1, c.z)           # (M11)
    dW1 = da1.T @ c.x + dout * c.lam * c.W1             # (M12)
    db1 = da1.sum(axis=0)                                # (M13)
    dx = da1 @ c.W1                                      # (M14)
    return {"a1": da1, "W1": dW1, "b1": db1, "x": dx}


def sgd_update(params: dict, grads: dict, lr: float) -> dict:
    """(M15): p <- p - lr * dL/dp. The decay is already inside dL/dW, so it is not added again."""
    return {k: params[k] - lr * grads[k] for k in ("W1", "b1", "W2", "b2")}


def labels(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.integers(0, dims["C"], size=shape)


def targets(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=shape)


def weights(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Uniform on +-1/sqrt(fan_in): pre-activations stay O(1) at any width, so the softmax and
    the sigmoid do not saturate (a saturated net has near-zero gradients that hide errors)."""
    return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(shape[1])


def min_abs_a1(c: Cache) -> float:
    return float(np.abs(c.a1).min())


TAGS = {"yhat": "M6", "a2": "M7", "W2": "M8", "b2": "M9", "z": "M10", "a1": "M11", "W1": "M12",
        "b1": "M13", "x": "M14"}
L2_TAGS = {**TAGS, "yhat": "M6'", "a2": "M7'"}
# The page's equations each loss follows: both share (M1)-(M3) and (M8)-(M15).
SHARED_EQUATIONS = ("M1", "M2", "M3", "M8", "M9", "M10", "M11", "M12", "M13", "M14", "M15")
EQUATIONS = {"ce": SHARED_EQUATIONS + ("M4", "M5", "M6", "M7"),
             "l2": SHARED_EQUATIONS + ("M4'", "M5'", "M6'", "M7'")}
LOSSES = {"ce": ("ce", "identity"), "l2id": ("l2", "identity"), "l2sig": ("l2", "sigmoid")}
DIMS = {"N": (1, 6), "d": (1, 7), "M": (1, 8), "C": (1, 5)}
NONDEGENERATE_DIMS = {**DIMS, "M": (2, 8), "C": (2, 5)}
"""For errata: with one class the softmax is 1 and every data gradient is 0, and a gradient of one
entry matches any wrong value up to a factor, so the smallest case would name a misleading kind."""


def mlp_flops(d) -> float:
    """FLOPs of the two layers' products, each once forward and twice backward (weight and input
    gradient): 6 N (d M + M C). Elementwise work and the softmax are not counted."""
    return 6.0 * d["N"] * (d["d"] * d["M"] + d["M"] * d["C"])


def make(loss_name: str, f1: str, **changes) -> Derivation:
    """The record of one variant; ``changes`` overrides record fields (used by the errata)."""
    loss, f2 = LOSSES[loss_name]
    opts = {"loss": loss, "f1": f1, "f2": f2, "lam": LAM}
    fields = {
        "name": f"mlp-{loss_name}-{f1}",
        "forward": partial(forward, **opts),
        "backward": backward,
        "reference": partial(ref.loss, **opts),
        "inputs": {"x": ("N", "d"), "y": ("N",) if loss == "ce" else ("N", "C"),
                   "W1": ("M", "d"), "b1": ("M",), "W2": ("C", "M"), "b2": ("C",)},
        "dims": DIMS,
        "nondiff": {"y"},
        "intermediates": ("yhat", "a2", "z", "a1"),
        "intermediate_shapes": {"yhat": ("N", "C"), "a2": ("N", "C"), "z": ("N", "M"),
                                "a1": ("N", "M")},
        "tags": TAGS if loss == "ce" else L2_TAGS,
        "samplers": {"y": labels if loss == "ce" else targets, "W1": weights, "W2": weights},
        "kink_distance": min_abs_a1 if f1 == "relu" else None,
        "variant": {"loss": loss_name, "f1": f1},
        "source": "bp-derivation.txt section 2",
        "complex_step": f1 != "relu",
        "update": sgd_update,
        "bench": ({"N": 64, "d": 784, "M": 256, "C": 10},) if (loss_name, f1) == ("ce", "tanh")
        else (),
        "flops": mlp_flops,
        "symbols": {"h": "z"},
        "equations": EQUATIONS[loss],
    }
    return Derivation(**{**fields, **changes})


RECORDS = [make(loss, f1) for loss in LOSSES for f1 in ("sigmoid", "tanh", "relu")]
