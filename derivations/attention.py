"""Scaled dot-product attention, causal or not, alone or after the projections of an input: a
derivation without a source write-up, see ``attention.md``.

Batch first: queries Q (B, T, d), keys K (B, S, d), values V (B, S, dv), output (B, T, dv);
causal attention has S = T. With projections: x (B, T, m), Wq (m, d), Wk (m, d), Wv (m, dv).
The output is a tensor: the engine's random upstream gradient dout (B, T, dv) stands for
whatever loss follows (the page's bar-O; it writes d as d_k, m as D and the mask as calligraphic
M, one letter, one meaning across the catalogue: notation.md).

The row maximum is shifted by its real part, so the forward stays holomorphic and the complex
step applies: a masked entry becomes -inf + 0i and its exponential 0. The intermediates are
reported in backward order: ``P``, ``scores`` on given Q, K, V; ``P``, ``V``, ``scores``, ``Q``,
``K`` in self-attention, where Q, K, V are intermediates. The masked entries of P and of dL/dA
must be exactly zero, which the engine's tolerance cannot tell from tiny (a mask of -30 leaves
weights near 1e-13, inside float64's 1e-11 of the largest entry): ``tests/test_attention.py``
asks for exact zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import attention as ref


@dataclass
class Cache:
    Q: np.ndarray  # (B, T, d)
    K: np.ndarray  # (B, S, d)
    V: np.ndarray  # (B, S, dv)
    scores: np.ndarray  # (B, T, S), before the mask
    P: np.ndarray  # (B, T, S), exactly 0 where the mask removes a key
    scale: float  # 1 / sqrt(d)
    allowed: np.ndarray | None  # (T, S) bool, key j <= query i; None without a mask


def causal_mask(T: int, S: int) -> np.ndarray:
    """allowed[i, j] = (j <= i): query i sees keys 0..i."""
    return np.tri(T, S, dtype=bool)


def forward(Q, K, V, *, causal: bool):
    """out = softmax(mask(Q K^T / sqrt(d))) V: (B, T, dv), and the cache."""
    B, T, d = Q.shape
    S = K.shape[1]
    scale = 1.0 / math.sqrt(d)
    scores = Q @ K.swapaxes(1, 2)                                      # (SA1) Q K^T
    scores *= scale                                                    # (SA1)
    allowed = causal_mask(T, S) if causal else None
    P = np.where(allowed, scores, -np.inf) if causal else scores.copy()  # (SA2)
    # Shifted by the real row maximum (every row keeps key 0): exp stays finite and the
    # forward stays holomorphic for the complex step; exp(-inf) = 0 at the masked keys.
    P -= P.real.max(axis=2, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=2, keepdims=True)                                  # (SA3)
    out = P @ V                                                        # (SA4)
    return out, Cache(Q, K, V, scores, P, scale, allowed)


def softmax_backward(dP: np.ndarray, P: np.ndarray) -> np.ndarray:
    """dscores from dP through the row softmax: the full Jacobian diag(p) - p p^T per row.

    Zero wherever P is zero, so at every masked key, without reading the mask: the -inf never
    enters the backward and no 0 * inf arises.
    """
    row = np.einsum("bts,bts->bt", dP, P)[..., None]                   # (SA7) P_i^T delta_i per row
    dscores = np.subtract(dP, row)                                     # (SA7)
    dscores *= P                                                       # (SA7)
    return dscores


def score_backward(dscores: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dQ and dK from dscores, through scores = Q K^T / sqrt(d)."""
    dQ = dscores @ c.K                                                 # (SA8)
    dQ *= c.scale                                                      # (SA8)
    dK = dscores.swapaxes(1, 2) @ c.Q                                  # (SA9)
    dK *= c.scale                                                      # (SA9)
    return {"Q": dQ, "K": dK}


def backward(dout, c: Cache) -> dict[str, np.ndarray]:
    """Gradients of S = sum(dout * out) for Q, K, V and the intermediates P, scores."""
    dP = dout @ c.V.swapaxes(1, 2)                                     # (SA5)
    dV = c.P.swapaxes(1, 2) @ dout                                     # (SA6)
    dscores = softmax_backward(dP, c.P)
    return {"P": dP, "scores": dscores, **score_backward(dscores, c), "V": dV}


@dataclass
class Projected:
    x: np.ndarray  # (B, T, m)
    Wq: np.ndarray  # (m, d)
    Wk: np.ndarray  # (m, d)
    Wv: np.ndarray  # (m, dv)
    inner: Cache


def forward_projected(x, Wq, Wk, Wv, *, causal: bool):
    """Self-attention of x: Q, K, V = x Wq, x Wk, x Wv, then ``forward``."""
    out, inner = forward(x @ Wq, x @ Wk, x @ Wv, causal=causal)       # (SA10)
    return out, Projected(x, Wq, Wk, Wv, inner)


def backward_projected(dout, c: Projected) -> dict[str, np.ndarray]:
    """Gradients for x and the three projections, and the intermediates P, V, scores, Q, K."""
    inner = backward(dout, c.inner)
    B, T, m = c.x.shape
    x2 = c.x.reshape(B * T, m)
    dQ, dK, dV = (inner[k].reshape(B * T, -1) for k in ("Q", "K", "V"))
    dWq = x2.T @ dQ                                                    # (SA11)
    dWk = x2.T @ dK                                                    # (SA12)
    dWv = x2.T @ dV                                                    # (SA13)
    dx = dQ @ c.Wq.T                                                   # (SA14) x feeds Q,
    dx += dK @ c.Wk.T                                                  # (SA14) K
    dx += dV @ c.Wv.T                                                  # (SA14) and V: sum
    return {**inner, "Wq": dWq, "Wk": dWk, "Wv": dWv, "x": dx.reshape(B, T, m)}


def fan_in_weights(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Uniform on +-1/sqrt(fan_in), fan_in = shape[0]: Q and K entries stay O(1), so the scores
    do too and the softmax does not saturate (a one-hot P has a near-zero Jacobian)."""
    return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(shape[0])


def gemm_flops(dims) -> float:
    """2 rows cols inner per product, dense (the causal mask halves the useful work, not the
    products): Q K^T and P V forward; dP, dV, dQ, dK backward. The softmax and its backward
    (about 10 operations per score) are not counted."""
    B, T, d, dv = (dims[k] for k in ("B", "T", "d", "dv"))
    S = dims.get("S", T)
    return 6.0 * B * T * S * (d + dv)


def projected_flops(dims) -> float:
    """``gemm_flops`` plus the three projections, forward and backward (dW and dx for each)."""
    B, T, m, d, dv = (dims[k] for k in ("B", "T", "m", "d", "dv"))
    return gemm_flops(dims) + 3 * 2 * B * T * m * (2 * d + dv)


TAGS = {"P": "SA5", "V": "SA6", "scores": "SA7", "Q": "SA8", "K": "SA9"}
SCORE_SHAPES = {"P": ("B", "T", "S"), "scores": ("B", "T", "S")}
# Dimension order matters to the case of distinct dims: B=2, T=3, then d=5 (or S=4, d=5), so
# that sqrt(d) is no round factor and the scores are not square where S is free.
CAUSAL_DIMS = {"B": (1, 3), "T": (1, 6), "dv": (1, 4), "d": (1, 6)}
CROSS_DIMS = {"B": (1, 3), "T": (1, 5), "S": (1, 6), "d": (1, 5), "dv": (1, 6)}
PROJECTED_DIMS = {"B": (1, 3), "T": (1, 6), "m": (1, 4), "d": (1, 5), "dv": (1, 6)}
BENCH = ({"B": 8, "T": 128, "d": 64, "dv": 64}, {"B": 16, "T": 256, "d": 64, "dv": 64})


# The page's letters that the reference spells otherwise; delta_i is the page's name on the
# spot for row i of dL/dP.
SYMBOLS = {"A": "scores", "\\tilde A": "logits", "\\mathcal M": "mask", "d_k": "d",
           "\\delta_i": r"\frac{\partial L}{\partial P_i}"}
# Attention on given Q, K, V follows (SA1)-(SA9); without a mask (SA2) does not apply.
ATTENTION_EQUATIONS = tuple(f"SA{i}" for i in range(1, 10))


def make(name: str, causal: bool, **changes) -> Derivation:
    """Attention on given Q, K, V; ``changes`` overrides record fields (used by the mistakes).

    Causal attention has as many keys as queries: S is T in its shapes.
    """
    keys = "T" if causal else "S"
    fields = {
        "name": name,
        "forward": partial(forward, causal=causal),
        "backward": backward,
        "reference": partial(ref.attention, causal=causal),
        "inputs": {"Q": ("B", "T", "d"), "K": ("B", keys, "d"), "V": ("B", keys, "dv")},
        "dims": CAUSAL_DIMS if causal else CROSS_DIMS,
        "intermediates": ("P", "scores"),
        "intermediate_shapes": {k: ("B", "T", keys) for k in SCORE_SHAPES},
        "tags": TAGS,
        "variant": {"mask": "causal" if causal else "none"},
        "complex_step": True,
        "output": ("B", "T", "dv"),
        "strict_dtype": True,
        "flops": gemm_flops,
        "symbols": SYMBOLS,
        "equations": tuple(t for t in ATTENTION_EQUATIONS if causal or t != "SA2"),
    }
    return Derivation(**{**fields, **changes})


def make_projected(name: str, **changes) -> Derivation:
    """Causal self-attention of x through the projections Wq, Wk, Wv."""
    fields = {
        "name": name,
        "forward": partial(forward_projected, causal=True),
        "backward": backward_projected,
        "reference": partial(ref.self_attention, causal=True),
        "inputs": {"x": ("B", "T", "m"), "Wq": ("m", "d"), "Wk": ("m", "d"), "Wv": ("m", "dv")},
        "dims": PROJECTED_DIMS,
        "intermediates": ("P", "V", "scores", "Q", "K"),
        "intermediate_shapes": {"P": ("B", "T", "T"), "V": ("B", "T", "dv"),
                                "scores": ("B", "T", "T"), "Q": ("B", "T", "d"),
                                "K": ("B", "T", "d")},
        "tags": {**TAGS, "Wq": "SA11", "Wk": "SA12", "Wv": "SA13", "x": "SA14"},
        "samplers": {"Wq": fan_in_weights, "Wk": fan_in_weights, "Wv": fan_in_weights},
        "variant": {"mask": "causal", "projections": "x Wq, x Wk, x Wv"},
        "complex_step": True,
        "output": ("B", "T", "dv"),
        "strict_dtype": True,
        "flops": projected_flops,
        "symbols": SYMBOLS,
    }
    return Derivation(**{**fields, **changes})


RECORDS = [
    make("attention-causal", causal=True, bench=BENCH),
    make("attention-cross", causal=False),
    make_projected("attention-self-causal"),
]
