"""LeNet-5's two layer types, section 3 of the source, corrected: see ``lenet5.md``.

Convolution with a connection table (C1, C3, C5), (L1) (L2):
    X (N, C, H, W), W (D, C, kh, kw), b (D,), T (C, D) in {0, 1}  ->  Y = f(Yt) (N, D, Ho, Wo).
Trainable mean-pool (S2, S4), (L3) (L4):
    Y (N, D, H, W), w (D,), a (D,)  ->  X = g(Xt) (N, D, H // p, W // p).

The layer functions work on the ``(C, H, W, N)`` layout of ``_lenet5_kernels``; the records wrap
them for ``(N, C, H, W)`` arrays. The backward functions take their stages as keyword arguments,
so that the errata records (``lenet5.py``) can swap one for the source's formula as written.

The layer records report the page's equations: ``conv-table*`` gives Yt (L16), W (L17), b (L18),
X (L19); ``meanpool*`` gives Xt (L20), w (L21), a (L22, beta on the page), Y (L23).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from derivations._lenet5_kernels import (
    ACTIVATIONS,
    chwn_copy,
    correlate,
    full_correlate,
    mean_pool,
    nchw,
    pool_coefficient,
    random_table,
    rot180,
    spread,
    switch_on,
    table_or_paper,
    uniform_fan_in,
    unpool,
    weight_grad,
    window_index,
    window_scale,
)
from handgrad import Derivation
from reference import lenet5 as ref


@dataclass
class Conv:
    """What the backward of a convolution layer needs; maps in the (C, H, W, N) layout."""

    X: np.ndarray      # (C, H, W, N) input maps X^(l-1), C-contiguous
    W: np.ndarray      # (D, C, kh, kw) as given
    Wm: np.ndarray     # (D, C, kh, kw) with the table applied
    T: np.ndarray      # (C, D)
    Y: np.ndarray      # (D, Ho, Wo, N); f' comes from Y, so Yt is not kept
    f: str
    kink_distance: float  # distance of the pre-activations to relu's kink (inf for other f)


@dataclass
class Pool:
    """What the backward of a pooling layer needs; maps in the (C, H, W, N) layout."""

    size: tuple[int, int]  # (H, W) of the input maps
    P: np.ndarray      # (D, Ho, Wo, N) window means, MeanPool(Y)
    w: np.ndarray      # (D,)
    Xt: np.ndarray     # (D, Ho, Wo, N) before the activation
    X: np.ndarray      # (D, Ho, Wo, N)
    p: int
    g: str


def conv(X: np.ndarray, W: np.ndarray, b: np.ndarray, T: np.ndarray, f: str) -> Conv:
    """Forward of a convolution layer on X (C, H, W, N) (copied if not C-contiguous)."""
    X = np.ascontiguousarray(X)
    Wm = switch_on(W, T)
    Yt = correlate(X, Wm, b)                           # (L1) in the workspace, rows blocked
    D, blocks, R, Wo, N = Yt.shape
    Y = np.empty((D, blocks * R, Wo, N), Yt.dtype)
    ACTIVATIONS[f][0](Yt, out=Y.reshape(Yt.shape))     # (L2)
    kink = float(np.abs(Yt).min()) if f == "relu" else math.inf
    return Conv(X, W, Wm, T, Y, f, kink)


def activation_slope(c: Conv) -> np.ndarray:
    """f'(Yt) (D, Ho, Wo, N), a new array."""
    return ACTIVATIONS[c.f][1](c.Y)


def input_kernels(c: Conv) -> np.ndarray:
    """R[p, d] = rot180(W^(p,d)) for every input map p and output map d: (C, D, kh, kw)."""
    return rot180(c.Wm).transpose(1, 0, 2, 3)


def conv_backward(
    dY: np.ndarray,
    c: Conv,
    slope: np.ndarray,
    *,
    kernels: Callable[[Conv], np.ndarray] = input_kernels,
    wgrad: Callable[..., np.ndarray] = weight_grad,
) -> dict[str, np.ndarray]:
    """dY (D, Ho, Wo, N) and slope = f'(Yt) -> dYt, dW, db, dX; maps in (C, H, W, N).

    ``slope`` must be a new array: it becomes dYt (one multi-megabyte array fewer per call).
    """
    dYt = np.multiply(slope, dY, out=slope)                            # (L16)
    dW = switch_on(wgrad(dYt, c.X, c.W.shape), c.T)                   # (L17)
    db = dYt.reshape(len(dYt), -1).sum(axis=1)                         # (L18)
    dX = full_correlate(dYt, kernels(c), c.X.shape[1], c.X.shape[2])  # (L19)
    return {"Yt": dYt, "W": dW, "b": db, "X": dX}


def pool(Y: np.ndarray, w: np.ndarray, a: np.ndarray, p: int, g: str) -> Pool:
    """Forward of a pooling layer on Y (D, H, W, N)."""
    P = mean_pool(Y, p)
    Xt = w[:, None, None, None] * P                            # (L3)
    Xt += a[:, None, None, None]                               # (L3)
    X = ACTIVATIONS[g][0](Xt)                                  # (L4)
    return Pool(Y.shape[1:3], P, w, Xt, X, p, g)


def pool_backward(
    dX: np.ndarray,
    c: Pool,
    *,
    index: Callable[[int, int], np.ndarray] = window_index,
    scale: Callable[[int], float] = window_scale,
) -> dict[str, np.ndarray]:
    """dX (D, Ho, Wo, N) -> dXt, dw, da, dY; maps in (D, H, W, N)."""
    H, W = c.size
    D = len(c.w)
    dXt = ACTIVATIONS[c.g][1](c.X)
    dXt *= dX                                                                  # (L20)
    dw = np.einsum("ij,ij->i", dXt.reshape(D, -1), c.P.reshape(D, -1))        # (L21)
    da = dXt.reshape(D, -1).sum(axis=1)                                        # (L22)
    G = (c.w * scale(c.p))[:, None, None, None] * dXt
    # The whole-window index as one broadcast copy; the source's index (an erratum) as a gather.
    spread_by = spread if index is window_index else unpool_by(index)
    dY = spread_by(G, c.p, H, W)                                               # (L23)
    return {"Xt": dXt, "w": dw, "a": da, "Y": dY}


def unpool_by(index: Callable[[int, int], np.ndarray]):
    """``spread`` with the window of each row and column given by ``index``."""
    return lambda G, p, H, W: unpool(G, index(H, p), index(W, p))


def conv_forward(X, W, b, T, *, f: str):
    """Y (N, D, Ho, Wo) of X (N, C, H, W), and the cache."""
    c = conv(chwn_copy(X), W, b, T, f)
    return nchw(c.Y), c


def conv_record_backward(dY, c: Conv, **stages) -> dict[str, np.ndarray]:
    g = conv_backward(chwn_copy(dY), c, activation_slope(c), **stages)
    return {"Yt": nchw(g["Yt"]), "W": g["W"], "b": g["b"], "X": nchw(g["X"])}


def pool_forward(Y, w, a, *, p: int, g: str):
    """X (N, D, H // p, W // p) of Y (N, D, H, W), and the cache."""
    c = pool(chwn_copy(Y), w, a, p, g)
    return nchw(c.X), c


def pool_record_backward(dX, c: Pool, **stages) -> dict[str, np.ndarray]:
    grads = pool_backward(chwn_copy(dX), c, **stages)
    return {"Xt": nchw(grads["Xt"]), "w": grads["w"], "a": grads["a"], "Y": nchw(grads["Y"])}


def min_abs_preactivation(c: Conv | Pool) -> float:
    return c.kink_distance if isinstance(c, Conv) else float(np.abs(c.Xt).min())


def conv_flops(d) -> float:
    """FLOPs (a multiply-add counts 2) of the three correlations of a dense layer: the forward
    (L1), the weight gradient (L17) and the input gradient (L19), each N D C kh kw Ho Wo
    multiply-adds. This is what autograd does for any table (it convolves with the masked W). A
    hand layer that skips the pairs its table T switches off needs T.sum() / (C D) of it: 60 / 96
    for the paper's C3. Bias, activation and slope (O(N D Ho Wo), under 1/(C kh kw) of the
    products) are not counted."""
    return 6.0 * d["N"] * d["D"] * d["C"] * d["kh"] * d["kw"] * d["Ho"] * d["Wo"]


def derive_conv(d):
    return {"Hi": d["Ho"] + d["kh"] - 1, "Wi": d["Wo"] + d["kw"] - 1}


CONV_INPUTS = {"X": ("N", "C", "Hi", "Wi"), "W": ("D", "C", "kh", "kw"), "b": ("D",),
               "T": ("C", "D")}
CONV_TAGS = {"Yt": "L16", "W": "L17", "b": "L18", "X": "L19"}
C1 = {"C": 1, "D": 6, "kh": 5, "kw": 5, "Ho": 28, "Wo": 28}
C3 = {"C": 6, "D": 16, "kh": 5, "kw": 5, "Ho": 10, "Wo": 10}


def make_conv(f: str, name: str = "", **changes) -> Derivation:
    """A convolution-layer record with activation f; ``changes`` overrides fields (errata)."""
    fields = {
        "name": name or ("conv-table" if f == "scaled-tanh" else f"conv-table-{f}"),
        "forward": partial(conv_forward, f=f),
        "backward": conv_record_backward,
        "reference": partial(ref.conv_layer, f=f),
        "inputs": CONV_INPUTS,
        "dims": {"N": (1, 3), "C": (1, 4), "D": (1, 5), "kh": (1, 4), "kw": (1, 4),
                 "Ho": (1, 4), "Wo": (1, 4)},
        "derive": derive_conv,
        "nondiff": {"T"},
        "intermediates": ("Yt",),
        "intermediate_shapes": {"Yt": ("N", "D", "Ho", "Wo")},
        "tags": CONV_TAGS,
        "samplers": {"W": uniform_fan_in, "T": random_table},
        "kink_distance": min_abs_preactivation if f == "relu" else None,
        "variant": {"layer": "conv with connection table", "f": f, "table": "random"},
        "source": "bp-derivation.txt section 3",
        "complex_step": f != "relu",
        "bench": ({**C1, "N": 1}, {**C1, "N": 64}) if f == "scaled-tanh" else (),
        "flops": conv_flops,
    }
    return Derivation(**{**fields, **changes})


def derive_pool(p: int):
    """H, W from the window count and a remainder (R - 1) mod p of rows/columns left over."""
    return lambda d: {"Hi": p * d["Ho"] + (d["Rh"] - 1) % p, "Wi": p * d["Wo"] + (d["Rw"] - 1) % p}


def pool_flops(p: int):
    """FLOPs of a pooling layer at dims d, per window: p^2 for the mean, 2 for w P + a (L3), and
    5 in the backward: dXt (L20), w P dXt summed (L21), dXt summed (L22), w / p^2 dXt (L23).
    The activation and its slope are not counted, as in ``conv_flops``."""
    return lambda d: float(d["N"] * d["D"] * d["Ho"] * d["Wo"] * (p * p + 7))


def make_pool(g: str, p: int, name: str = "", **changes) -> Derivation:
    """A pooling-layer record with window p and activation g; ``changes`` overrides fields."""
    suffix = "" if g == "scaled-tanh" else f"-{g}"
    fields = {
        "name": name or f"meanpool{'' if p == 2 else f'-p{p}'}{suffix}",
        "forward": partial(pool_forward, p=p, g=g),
        "backward": pool_record_backward,
        "reference": partial(ref.pool_layer, p=p, g=g),
        "inputs": {"Y": ("N", "D", "Hi", "Wi"), "w": ("D",), "a": ("D",)},
        "dims": {"N": (1, 3), "D": (1, 4), "Ho": (1, 3), "Wo": (1, 3), "Rh": (1, p),
                 "Rw": (1, p)},
        "derive": derive_pool(p),
        "intermediates": ("Xt",),
        "intermediate_shapes": {"Xt": ("N", "D", "Ho", "Wo")},
        "tags": {"Xt": "L20", "w": "L21", "a": "L22", "Y": "L23"},
        "samplers": {"w": pool_coefficient},
        "kink_distance": min_abs_preactivation if g == "relu" else None,
        "variant": {"layer": "trainable mean-pool", "g": g, "p": str(p)},
        "source": "bp-derivation.txt section 3",
        "complex_step": g != "relu",
        "bench": ({"N": 64, "D": 6, "Ho": 14, "Wo": 14, "Rh": 1, "Rw": 1},)
        if (g, p) == ("scaled-tanh", 2) else (),
        "flops": pool_flops(p),
    }
    return Derivation(**{**fields, **changes})


RECORDS = [
    *(make_conv(f) for f in ACTIVATIONS),
    make_conv("scaled-tanh", "conv-table-paper", dims={**{k: (v, v) for k, v in C3.items()},
                                                      "N": (1, 2)},
              samplers={"W": uniform_fan_in, "T": table_or_paper},
              variant={"layer": "conv with connection table", "f": "scaled-tanh",
                       "table": "paper (C3)"},
              bench=({**C3, "N": 1}, {**C3, "N": 64})),
    *(make_pool(g, 2) for g in ACTIVATIONS),
    make_pool("scaled-tanh", 3),
]
