"""LeNet-5 with the paper's output layer: Euclidean RBF units on F6 and the MAP loss. See the
section *The paper's output layer* of ``lenet5.md``.

F6's output x = Y4 (N, F) -> penalties R (N, K), R_nk = sum_i (x_ni - Pi_ki)^2 (L24) -> the
MAP criterion E (L25), eq. (9) of LeCun et al. 1998, averaged over the batch. The prototypes
Pi (K, F) in {-1, +1} are fixed, not trained; j > 0 is a constant of the loss. The page writes
E as L, K as C, j as rho and the posterior q as P (one letter, one meaning: notation.md); the
``rbf-map`` record runs the head alone on an input x standing for Y4.

At the paper's size the penalties at the start are 112 to 205 (eight draws), and j = 168 exceeds
the nearest class's penalty by 18 to 56, so the rubbish class's share is below 1e-8: the
paper-size case checks the competition between the classes, and the small sampled geometries,
where the rubbish class's share is 3e-5 to 0.57 (median 0.01 to 0.03), check its term too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from derivations._lenet5_kernels import pool_coefficient, table_or_paper, uniform_fan_in
from derivations.lenet5 import (
    INPUTS,
    PAPER,
    TRUNK_INTERMEDIATES,
    TRUNK_TAGS,
    Trunk,
    derive,
    labels,
    trunk,
    trunk_backward,
)
from handgrad import Derivation
from reference import lenet5_rbf as ref

PROTOTYPE_SEED = 1998


def prototypes(K: int, F: int) -> np.ndarray:
    """K fixed prototypes (K, F) in {-1, +1}, standing in for the paper's 7 x 12 bitmaps of the
    characters, which we do not have.

    Each row is balanced (F // 2 entries -1, the rest +1), its order drawn by a generator seeded
    with (PROTOTYPE_SEED, F); rows are distinct while C(F, F // 2) allows. Row k does not depend
    on K.
    """
    rng = np.random.default_rng([PROTOTYPE_SEED, F])
    balanced = np.where(np.arange(F) < F // 2, -1.0, 1.0)
    rows: list[np.ndarray] = []
    while len(rows) < K:
        row = rng.permutation(balanced)
        if len(rows) >= math.comb(F, F // 2) or not any(np.array_equal(row, r) for r in rows):
            rows.append(row)
    return np.array(rows)


@dataclass
class Rbf:
    diff: np.ndarray  # (N, K, F) x_n - Pi_k
    q: np.ndarray     # (N, K) e^{-R_nk} / (e^{-j} + sum_k' e^{-R_nk'})
    y: np.ndarray     # (N,) labels


def rbf_head(x, Pi, y, j) -> tuple[np.ndarray, Rbf]:
    """MAP loss (0-d) of the RBF units on x (N, F), prototypes Pi (K, F), labels y (N,), j (0-d).

    The log of (L25) is taken after shifting every exponent by s_n = min(j, min_k R_nk): the
    largest exponential becomes 1, so the sum can neither overflow nor underflow to 0 (at the
    paper's size every e^{-R_nk} underflows float32).
    """
    diff = x[:, None, :] - Pi                                   # (L24)
    R = (diff * diff).sum(axis=2)                               # (L24)
    s = np.minimum(R.real.min(axis=1), j.real)
    e = np.exp(s[:, None] - R)                                  # e^{-R_nk} e^{s_n}
    total = np.exp(s - j) + e.sum(axis=1)                       # (e^{-j} + sum_k e^{-R_nk}) e^{s_n}
    N = len(y)
    E = (R[np.arange(N), y] - s + np.log(total)).mean()         # (L25)
    return E, Rbf(diff, e / total[:, None], y)


def rbf_backward(dout, c: Rbf) -> tuple[np.ndarray, np.ndarray]:
    """(dE/dR (N, K), dE/dx (N, F)) for the upstream dout of E."""
    N = len(c.y)
    dR = -c.q                                                   # (L26) competition
    dR[np.arange(N), c.y] += 1.0                                # (L26) correct class
    dR *= dout / N                                              # (L26) batch mean
    dx = 2.0 * (dR[:, :, None] * c.diff).sum(axis=1)            # (L27)
    return dR, dx


def backward_head(dout, c: Rbf) -> dict[str, np.ndarray]:
    dR, dx = rbf_backward(dout, c)
    return {"R": dR, "x": dx}


@dataclass
class RbfNet:
    trunk: Trunk
    head: Rbf


def forward(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, Pi, j, y, *, f: str, p: int):
    """MAP loss of the batch (0-d), and the cache."""
    t = trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, f=f, p=p)
    E, head = rbf_head(t.Y4, Pi, y, j)
    return E, RbfNet(t, head)


def backward(dout, c: RbfNet) -> dict[str, np.ndarray]:
    dR, dY4 = rbf_backward(dout, c.head)
    return {"R": dR, "Y4": dY4, **trunk_backward(dY4, c.trunk)}


def fixed_prototypes(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """The prototypes of ``prototypes``: the same at every case of a given (K, F)."""
    return prototypes(*shape)


def rubbish_penalty(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """j = 2F, the same at every case of a given F (the paper gives no value): a penalty is a sum
    of F squares (x_i - w_ki)^2, each 1 to 2 on average at these inputs (|x_i| < 1.72,
    w_ki = +-1), so the rubbish class sits about as far as the far classes."""
    return np.asarray(2.0 * dims["F"])


HEAD_SAMPLERS = {"Pi": fixed_prototypes, "j": rubbish_penalty, "y": labels}
HEAD_NONDIFF = {"Pi", "j", "y"}
HEAD_TAGS = {"R": "L26", "x": "L27"}


def make_head(name: str = "rbf-map", **changes) -> Derivation:
    """The RBF units and the MAP loss alone, on an input x (N, F) standing for F6's output."""
    fields = {
        "name": name,
        "forward": rbf_head,
        "backward": backward_head,
        "reference": ref.rbf_map,
        "inputs": {"x": ("N", "F"), "Pi": ("K", "F"), "y": ("N",), "j": ()},
        # In this order the case of distinct dims is K=2, N=3, F=4: x is (3, 4), large enough
        # both ways that one wrong entry reads as an entry, not as a slice of two.
        "dims": {"K": (2, 5), "N": (1, 4), "F": (2, 6)},
        "nondiff": HEAD_NONDIFF,
        "intermediates": ("R",),
        "intermediate_shapes": {"R": ("N", "K")},
        "tags": HEAD_TAGS,
        "samplers": HEAD_SAMPLERS,
        "variant": {"layer": "Euclidean RBF output", "loss": "MAP (paper eq. 9)"},
        "source": "bp-derivation.txt section 3",
        "complex_step": True,
        "output": (),
    }
    return Derivation(**{**fields, **changes})


def make_network(f: str = "scaled-tanh", name: str = "lenet5-rbf", **changes) -> Derivation:
    """LeNet-5 with the RBF output and the MAP loss, at the paper's size and small geometries."""
    p = 2
    inputs = {k: v for k, v in INPUTS.items() if k not in ("W5", "b5", "y")}
    fields = {
        "name": name,
        "forward": partial(forward, f=f, p=p),
        "backward": backward,
        "reference": partial(ref.lenet5_rbf, f=f, p=p),
        "inputs": {**inputs, "Pi": ("K", "F"), "j": (), "y": ("N",)},
        "dims": {"N": (1, 3), "C0": (1, 2), "D1": (1, 3), "D2": (2, 4), "D3": (1, 4),
                 "F": (2, 4), "K": (2, 4), "k1h": (1, 3), "k1w": (1, 3), "k2h": (1, 3),
                 "k2w": (1, 3), "h4": (1, 2), "w4": (1, 2)},
        "derive": derive(p),
        "nondiff": {"T2"} | HEAD_NONDIFF,
        "intermediates": ("R", "Y4", *TRUNK_INTERMEDIATES),
        "tags": {"R": "L26", "Y4": "L27", **TRUNK_TAGS},
        "samplers": {**{k: uniform_fan_in for k in ("W1", "W2", "W3", "W4")},
                     **{k: pool_coefficient for k in ("w1", "w2")}, "T2": table_or_paper,
                     **HEAD_SAMPLERS},
        "variant": {"f": f, "p": str(p), "output": "Euclidean RBF", "loss": "MAP (paper eq. 9)"},
        "source": "bp-derivation.txt section 3",
        "cases": (PAPER,),
        "complex_step": True,
        "output": (),
    }
    return Derivation(**{**fields, **changes})


def dx_without_factor_2(dout, c: Rbf) -> dict[str, np.ndarray]:
    """(L27) with d(x - w)^2 / dx taken as (x - w): the factor 2 dropped."""
    dR, _ = rbf_backward(dout, c)
    return {"R": dR, "x": (dR[:, :, None] * c.diff).sum(axis=1)}


def competition_ignored(dout, c: Rbf) -> dict[str, np.ndarray]:
    """(L26) without the log-sum-exp term's gradient: the MSE criterion's (paper eq. 8)."""
    N = len(c.y)
    dR = np.zeros_like(c.q)
    dR[np.arange(N), c.y] = dout / N
    return {"R": dR, "x": 2.0 * (dR[:, :, None] * c.diff).sum(axis=1)}


def rubbish_class_dropped(dout, c: Rbf) -> dict[str, np.ndarray]:
    """(L26) with e^{-j} left out of the denominator: a softmax over the classes alone."""
    N = len(c.y)
    dR = -c.q / c.q.sum(axis=1, keepdims=True)
    dR[np.arange(N), c.y] += 1.0
    dR *= dout / N
    return {"R": dR, "x": 2.0 * (dR[:, :, None] * c.diff).sum(axis=1)}


def mistake(name: str, text: str, kind: str, wrong_backward) -> Derivation:
    return make_head(f"rbf-map-mutant-{name}", backward=wrong_backward, expect="reject",
                     erratum=text, expect_kind=kind)


RECORDS = [
    make_head(),
    make_network(),
    mistake("factor-2-dropped", "(L27) d(x - w)^2/dx written as (x - w): the factor 2 dropped",
            "factor", dx_without_factor_2),
    mistake("competition-ignored", "(L26) the gradient of log(e^-j + sum_i e^-R_i) left out: "
            "only the correct class's penalty is pushed down", "values", competition_ignored),
    mistake("rubbish-dropped", "(L26) e^-j left out of the posterior's denominator: the "
            "rubbish class ignored in the gradient", "values", rubbish_class_dropped),
]
