"""LeNet-5 end to end, section 3 of the source, corrected and completed: see ``lenet5.md``.

X0 (N, C0, H0, W0) -> C1 (L1, L2) -> S2 (L3, L4) -> C3 with table T2 -> S4 -> C5 (a convolution
whose kernel covers the whole S4 map) -> F6 (L5) -> scores Z (L6) -> summed cross-entropy (L7).
f is the activation of every layer (the source's f_l and g_l); pooling windows are p x p (s x s
on the page, whose p is an input map). The page writes the pooling bias a as beta, the classes K
as C, the connection table T as calligraphic T, and a map's (C, H, W) as (D, n_H, n_W): one
letter, one meaning across the catalogue (notation.md).

``dout`` is the upstream gradient of the harness, which differentiates dout * L for a random
scalar dout (``sum(dout * Y)`` for a layer record): every gradient carries that factor.
Everything up to F6 (``trunk``, ``trunk_backward``) is shared with the paper's RBF output
(``lenet5_rbf.py``).

Also the errata: the source's formulas as written, each an ``expect="reject"`` record that swaps
one stage of the correct backward (``lenet5_layers.py``) for it, and the source's pooling
formulas as written at p = 2, where they are right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from derivations._lenet5_kernels import (
    ACTIVATIONS,
    chwn_copy,
    nchw,
    pool_coefficient,
    rot180,
    table_or_paper,
    uniform_fan_in,
    upsample,
    weight_grad,
)
from derivations.lenet5_layers import (
    Conv,
    Pool,
    activation_slope,
    conv,
    conv_backward,
    conv_flops,
    conv_forward,
    conv_record_backward,
    make_conv,
    pool,
    pool_backward,
    pool_flops,
)
from handgrad import Derivation
from reference import lenet5 as ref


@dataclass
class Trunk:
    """Everything from the input to F6's output."""

    c1: Conv
    s2: Pool
    c3: Conv
    s4: Pool
    c5: Conv
    Y3: np.ndarray    # (N, D3) C5's maps, flattened
    W4: np.ndarray    # (F, D3)
    Yt4: np.ndarray   # (N, F)
    Y4: np.ndarray    # (N, F)
    f: str


@dataclass
class Net(Trunk):
    """The trunk with the softmax output layer."""

    W5: np.ndarray    # (K, F)
    P: np.ndarray     # (N, K) softmax of the scores
    y: np.ndarray     # (N,) labels


def full_table(W: np.ndarray) -> np.ndarray:
    """The table (C, D) connecting every input map of W (D, C, kh, kw) to every output map."""
    return np.ones(W.shape[1::-1], dtype=np.int64)


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row softmax of Z (N, K); the shift by the real row maximum keeps it holomorphic."""
    e = np.exp(Z - Z.real.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, *, f: str, p: int) -> Trunk:
    """C1 to F6 on X0 (N, C0, H0, W0): the cache, with F6's output Y4 (N, F)."""
    c1 = conv(chwn_copy(X0), W1, b1, full_table(W1), f)    # (L1) (L2)
    s2 = pool(c1.Y, w1, a1, p, f)                          # (L3) (L4)
    c3 = conv(s2.X, W2, b2, T2, f)                         # (L1) (L2)
    s4 = pool(c3.Y, w2, a2, p, f)                          # (L3) (L4)
    c5 = conv(s4.X, W3, b3, full_table(W3), f)             # (L1) (L2)
    Y3 = c5.Y.reshape(len(W3), -1).T
    Yt4 = Y3 @ W4.T + b4                                   # (L5)
    Y4 = ACTIVATIONS[f][0](Yt4)                            # (L5)
    return Trunk(c1, s2, c3, s4, c5, Y3, W4, Yt4, Y4, f)


def forward(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, W5, b5, y, *, f: str, p: int):
    """Summed cross-entropy of the batch (0-d), and the cache."""
    t = trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, f=f, p=p)
    Z = t.Y4 @ W5.T + b5                                   # (L6)
    P = softmax(Z)
    loss = -np.log(P[np.arange(len(y)), y]).sum()          # (L7)
    return loss, Net(**vars(t), W5=W5, P=P, y=y)


def slope_at_Yt(c: Conv, following: Pool) -> np.ndarray:
    """f'(Yt^(l)), the activation's derivative where it was applied."""
    return activation_slope(c)


def backward(dout, c: Net, *, slope: Callable[[Conv, Pool], np.ndarray] = slope_at_Yt):
    """Every gradient of the record; ``slope`` gives f' of the conv layers followed by a pool."""
    onehot = np.zeros_like(c.P)
    onehot[np.arange(len(c.y)), c.y] = 1.0
    dZ = dout * (c.P - onehot)                                   # (L8)
    dW5 = dZ.T @ c.Y4                                            # (L9)
    db5 = dZ.sum(axis=0)                                         # (L10)
    dY4 = dZ @ c.W5                                              # (L11)
    return {"Z": dZ, "W5": dW5, "b5": db5, "Y4": dY4, **trunk_backward(dY4, c, slope=slope)}


def trunk_backward(dY4, c: Trunk, *, slope: Callable[[Conv, Pool], np.ndarray] = slope_at_Yt):
    """F6 down to the input, given dL/dY4 (N, F): every trunk gradient but Y4's."""
    dYt4 = dY4 * ACTIVATIONS[c.f][1](c.Y4)                       # (L12)
    dW4 = dYt4.T @ c.Y3                                          # (L13)
    db4 = dYt4.sum(axis=0)                                       # (L14)
    dY3 = (dYt4 @ c.W4).T.reshape(c.c5.Y.shape)                  # (L15)
    g5 = conv_backward(dY3, c.c5, activation_slope(c.c5))        # (L16)-(L19)
    grads = {"Yt4": dYt4, "W4": dW4, "b4": db4,
             "Y3": nchw(dY3), "Yt3": nchw(g5["Yt"]), "W3": g5["W"], "b3": g5["b"]}
    dX = g5["X"]
    for l, cl, sl in ((2, c.c3, c.s4), (1, c.c1, c.s2)):
        gs = pool_backward(dX, sl)                               # (L20)-(L23)
        gc = conv_backward(gs["Y"], cl, slope(cl, sl))           # (L16)-(L19)
        grads |= {f"X{l}": nchw(dX), f"Xt{l}": nchw(gs["Xt"]), f"w{l}": gs["w"],
                  f"a{l}": gs["a"], f"Y{l}": nchw(gs["Y"]), f"Yt{l}": nchw(gc["Yt"]),
                  f"W{l}": gc["W"], f"b{l}": gc["b"]}
        dX = gc["X"]
    return {**grads, "X0": nchw(dX)}


def labels(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.integers(0, dims["K"], size=shape)


def min_abs_preactivation(c: Trunk) -> float:
    """Distance to relu's kink: the smallest |pre-activation| of any layer."""
    pools = (c.s2.Xt, c.s4.Xt, c.Yt4)
    return min(c.c1.kink_distance, c.c3.kink_distance, c.c5.kink_distance,
               *(float(np.abs(a).min()) for a in pools))


def derive(p: int):
    """Sizes of every map from S4's (h4, w4) and the kernels, back to the input (H0, W0)."""
    def sizes(d):
        Hs2, Ws2 = p * d["h4"] + d["k2h"] - 1, p * d["w4"] + d["k2w"] - 1
        return {"H0": p * Hs2 + d["k1h"] - 1, "W0": p * Ws2 + d["k1w"] - 1}
    return sizes


INPUTS = {
    "X0": ("N", "C0", "H0", "W0"),
    "W1": ("D1", "C0", "k1h", "k1w"), "b1": ("D1",), "w1": ("D1",), "a1": ("D1",),
    "W2": ("D2", "D1", "k2h", "k2w"), "b2": ("D2",), "T2": ("D1", "D2"), "w2": ("D2",),
    "a2": ("D2",),
    "W3": ("D3", "D2", "h4", "w4"), "b3": ("D3",),
    "W4": ("F", "D3"), "b4": ("F",),
    "W5": ("K", "F"), "b5": ("K",),
    "y": ("N",),
}
LAYERS = {"C1": ("W1", "b1"), "S2": ("w1", "a1"), "C3": ("W2", "b2"), "S4": ("w2", "a2"),
          "C5": ("W3", "b3"), "F6": ("W4", "b4"), "output": ("W5", "b5")}
"""The trainable inputs of each layer, by the paper's layer names."""
PAPER = {"N": 2, "C0": 1, "D1": 6, "D2": 16, "D3": 120, "F": 84, "K": 10, "k1h": 5, "k1w": 5,
         "k2h": 5, "k2w": 5, "h4": 5, "w4": 5}
TRUNK_TAGS = {"Yt4": "L12", "W4": "L13", "b4": "L14", "Y3": "L15", "X0": "L19",
              **{k: tag for l in (1, 2, 3) for k, tag in
                 ((f"Yt{l}", "L16"), (f"W{l}", "L17"), (f"b{l}", "L18"))},
              **{k: tag for l in (1, 2) for k, tag in
                 ((f"X{l}", "L19"), (f"Xt{l}", "L20"), (f"w{l}", "L21"), (f"a{l}", "L22"),
                  (f"Y{l}", "L23"))}}
TAGS = {"Z": "L8", "W5": "L9", "b5": "L10", "Y4": "L11", **TRUNK_TAGS}
TRUNK_INTERMEDIATES = ("Yt4", "Y3", "Yt3", "X2", "Xt2", "Y2", "Yt2", "X1", "Xt1", "Y1", "Yt1")


GAIN = {"sigmoid": 4.0}
"""Weight scale per activation: sigmoid's slope is at most 1/4, so without a gain of 4 (Glorot and
Bengio, 2010) the gradient at the input shrinks by ~4 per layer, to where the finite-difference
round-off (eps |L| / h ~ 1e-11) drowns it."""


def live_bias(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Biases uniform on [0.2, 1) for relu: with zero-mean biases about half the units of a small
    net are off, and one layer with every unit off zeroes every gradient below it (a vacuous
    check); positive biases keep most units on, and the engine's redraws do the rest."""
    return rng.uniform(0.2, 1.0, size=shape)


def network_flops(p: int):
    """FLOPs of the whole network at dims d: the three conv layers (dense, ``conv_flops``; C1
    includes the input gradient dX0, which the record reports), the two pooling layers, and the
    three products of F6 and of the output layer (forward, weight and input gradient). The
    softmax and the loss are not counted."""
    pool = pool_flops(p)

    def flops(d) -> float:
        N = d["N"]
        h3, w3 = p * d["h4"], p * d["w4"]
        h1, w1 = p * (h3 + d["k2h"] - 1), p * (w3 + d["k2w"] - 1)
        convs = (conv_flops({"N": N, "D": d["D1"], "C": d["C0"], "kh": d["k1h"], "kw": d["k1w"],
                             "Ho": h1, "Wo": w1})
                 + conv_flops({"N": N, "D": d["D2"], "C": d["D1"], "kh": d["k2h"],
                               "kw": d["k2w"], "Ho": h3, "Wo": w3})
                 + conv_flops({"N": N, "D": d["D3"], "C": d["D2"], "kh": d["h4"], "kw": d["w4"],
                               "Ho": 1, "Wo": 1}))
        pools = (pool({"N": N, "D": d["D1"], "Ho": h1 // p, "Wo": w1 // p})
                 + pool({"N": N, "D": d["D2"], "Ho": d["h4"], "Wo": d["w4"]}))
        return convs + pools + 6.0 * N * (d["F"] * d["D3"] + d["K"] * d["F"])
    return flops


def make(f: str, name: str = "", **changes) -> Derivation:
    """The network record with activation f and 2x2 pooling; ``changes`` overrides fields."""
    p = 2
    gain = GAIN.get(f, 1.0)
    weights = {k: partial(uniform_fan_in, gain=gain) for k in ("W1", "W2", "W3", "W4", "W5")}
    coefficients = {k: partial(pool_coefficient, gain=gain) for k in ("w1", "w2")}
    if f == "relu":
        coefficients |= {k: live_bias for k in ("b1", "a1", "b2", "a2", "b3", "b4")}
    fields = {
        "name": name or ("lenet5" if f == "scaled-tanh" else f"lenet5-{f}"),
        "forward": partial(forward, f=f, p=p),
        "backward": backward,
        "reference": partial(ref.lenet5, f=f, p=p),
        "inputs": INPUTS,
        "dims": {"N": (1, 3), "C0": (1, 2), "D1": (1, 3), "D2": (2, 4), "D3": (1, 4),
                 "F": (1, 4), "K": (2, 4), "k1h": (1, 3), "k1w": (1, 3), "k2h": (1, 3),
                 "k2w": (1, 3), "h4": (1, 2), "w4": (1, 2)},
        "derive": derive(p),
        "nondiff": {"T2", "y"},
        "intermediates": ("Z", "Y4", *TRUNK_INTERMEDIATES),
        "tags": TAGS,
        "samplers": {**weights, **coefficients, "T2": table_or_paper, "y": labels},
        "kink_distance": min_abs_preactivation if f == "relu" else None,
        "variant": {"f": f, "p": str(p), "loss": "cross-entropy"},
        "source": "bp-derivation.txt section 3",
        # relu: some of the ~16,000 pre-activations of the paper's size lie within any usable
        # kink margin of 0, so relu is checked at the small sampled sizes only.
        "cases": () if f == "relu" else (PAPER,),
        "complex_step": f != "relu",
        "bench": ({**PAPER, "N": 64},) if f == "scaled-tanh" else (),
        "flops": network_flops(p),
    }
    return Derivation(**{**fields, **changes})


def sum_over_p_as_written(c: Conv) -> np.ndarray:
    """The source's dX^(l-1,d) = sum_{p: T_pd = 1} rot180(W^(l,p,d)) *~ dYt^(l,d), for d < C.

    As a kernel stack for ``full_correlate``: R[d, d] = rot180(sum_p T_pd W^(l,p,d)), 0 off the
    diagonal, so input map d gets output map d's gradient only. Needs D >= C.
    """
    C = c.X.shape[0]
    R = np.zeros((C, len(c.Wm)) + c.Wm.shape[2:], c.Wm.dtype)
    R[np.arange(C), np.arange(C)] = rot180(c.Wm[:C].sum(axis=1))
    return R


def true_convolution_forward(X, W, b, T, *, f: str):
    """The convolution layer with (x) read as a true convolution: W * X = rot180(W) correlated
    with X. The cache holds the correlation kernels rot180(W)."""
    return conv_forward(X, rot180(W), b, T, f=f)


def weight_grad_as_written_true_convolution(dYt, X, shape) -> np.ndarray:
    """The source's dW = dL/dY~ (x) X with (x) a true valid convolution: rot180(dL/dY~)
    correlated with X. In 1-D with x (3,) and g = dL/dY~ (2,): (g0 x1 + g1 x0, g0 x2 + g1 x1).
    The gradient of the true-convolution forward is rot180(g correlated with X):
    (g0 x1 + g1 x2, g0 x0 + g1 x1)."""
    return weight_grad(dYt[:, ::-1, ::-1], X, shape)


def slope_at_Xt_as_written(c: Conv, following: Pool) -> np.ndarray:
    """The source's f'(X~^(l)) in place of f'(Y~^(l)), X~ repeated over its windows to fit."""
    _, H, W, _ = c.Y.shape
    Xt = upsample(following.Xt, following.p, H, W)
    return ACTIVATIONS[c.f][1](ACTIVATIONS[c.f][0](Xt))


def dense_table(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Every input map feeds every output map: every kernel's gradient is exercised."""
    return np.ones(shape, dtype=np.int64)


ERRATA_CONV_DIMS = {"N": (2, 2), "C": (2, 3), "D": (4, 5), "kh": (2, 3), "kw": (2, 3),
                    "Ho": (2, 3), "Wo": (2, 3)}

RECORDS = [
    *(make(f) for f in ACTIVATIONS),
    make("scaled-tanh", "lenet5-err-fprime-at-Xt", cases=(), bench=(),
         backward=partial(backward, slope=slope_at_Xt_as_written), expect="reject",
         expect_kind="values",
         erratum="source 3.4 step 3: dL/dX~^(l) = dL/dY^(l) . f'(X~^(l)): the activation's "
                 "derivative is taken at the pooled pre-activation X~ (repeated over each "
                 "window to fit); it belongs at the conv pre-activation Y~^(l)"),
    make_conv("scaled-tanh", "conv-table-err-dx-sum-over-p", dims=ERRATA_CONV_DIMS, bench=(),
              backward=partial(conv_record_backward, kernels=sum_over_p_as_written),
              expect="reject", expect_kind="values",
              erratum="source 3.4 step 3: dL/dX^(l-1,d) = sum_{p: T_pd=1} rot180(W^(l,p,d)) "
                      "*~ dL/dX~^(l,d) sums over input maps p for a fixed d; input map p must "
                      "sum over the output maps d it feeds"),
    # Read as a true convolution, (x) makes the forward W * X; the source's input gradient
    # rot180(W) *~ dL/dY~ is then right (it is what ``input_kernels`` computes from the rotated
    # cache), and only its dW is wrong. Read as the correlation, every formula of 3.4 step 3 is
    # right up to the errata above: nothing to transcribe.
    make_conv("scaled-tanh", "conv-table-err-dw-true-convolution", dims=ERRATA_CONV_DIMS,
              bench=(), forward=partial(true_convolution_forward, f="scaled-tanh"),
              reference=partial(ref.true_conv_layer, f="scaled-tanh"),
              samplers={"W": uniform_fan_in, "T": dense_table},
              backward=partial(conv_record_backward, wgrad=weight_grad_as_written_true_convolution),
              variant={"layer": "true convolution with connection table", "f": "scaled-tanh"},
              expect="reject", expect_kind="values",
              erratum="source 3.4 step 3 with (x) read as a true convolution (forward W * X): "
                      "dL/dW^(l,p,d) = dL/dY~^(l,d) * X^(l-1,p) is rot180(dL/dY~) correlated "
                      "with X; the gradient is rot180(dL/dY~ correlated with X)"),
]
