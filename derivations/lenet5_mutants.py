"""Bugs people make deriving LeNet-5 by hand, beyond the source's own: each must be caught and
diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py.

Also the source's pooling formulas (3.4 step 2) as written: right for the paper's 2x2 windows
(``meanpool-source-p2``), and wrong when kept for a 3x3 window (two mutants): the source covers
p = 2 only, so those are generalisations of ours, not errors of the source.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from derivations._lenet5_kernels import chwn, rot180, switch_on, uniform_fan_in, weight_grad
from derivations.lenet5_layers import (
    Conv,
    conv_record_backward,
    make_conv,
    make_pool,
    pool_record_backward,
)


def unrotated_kernels(c: Conv) -> np.ndarray:
    """(L19) with the kernels not turned by 180 degrees: a correlation where a convolution is
    needed."""
    return c.Wm.transpose(1, 0, 2, 3)


def conv_table_swapped_backward(dY, c: Conv) -> dict[str, np.ndarray]:
    """(L17) the table read as T[d, p] instead of T[p, d] when switching dW off."""
    grads = conv_record_backward(dY, c)
    dense = weight_grad(chwn(grads["Yt"]), c.X, c.W.shape)
    return {**grads, "W": switch_on(dense, c.T.T)}


def weight_grad_rotated(dYt, X, shape) -> np.ndarray:
    """(L17) turned by 180 degrees: the gradient of a true-convolution forward, rot180(dL/dY~
    correlated with X), paired with the correlation forward (L1)."""
    return rot180(weight_grad(dYt, X, shape))


def source_window_index(n: int, p: int) -> np.ndarray:
    """The source's window [(i+1)/2] (floor) of position i = 1..n, 0-based: i // 2 for i = 0..n-1,
    whatever p. A position whose window does not exist (past the last whole window) gets -1, no
    gradient: the source does not cover that case, which never arises at p = 2 with even sizes."""
    window = (np.arange(1, n + 1) + 1) // 2 - 1
    return np.where(window < n // p, window, -1)


def source_scale(p: int) -> float:
    """The source's w/4: d mean / d element of a 2x2 window, whatever p."""
    return 0.25


def full_table(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Every input map feeds every output map, so every input gradient map is exercised."""
    return np.ones(shape, dtype=np.int64)


SQUARE_TABLE = {"N": (2, 2), "C": (3, 3), "D": (3, 3), "kh": (2, 3), "kw": (2, 3),
                "Ho": (2, 3), "Wo": (2, 3)}
EVEN_SIZES = {"N": (1, 3), "D": (1, 4), "Ho": (1, 3), "Wo": (1, 3), "Rh": (1, 1), "Rw": (1, 1)}
"""Pooling inputs of 2 Ho x 2 Wo, even like the paper's 28 x 28 and 10 x 10 at p = 2."""
P3_TWO_WINDOWS = {"N": (1, 3), "D": (1, 4), "Ho": (2, 3), "Wo": (2, 3), "Rh": (1, 1),
                  "Rw": (1, 1)}
"""At least two whole 3x3 windows a side and no rows left over, so that reading the wrong window
shows as wrong values, not as a leftover row that happens to be right."""

RECORDS = [
    make_conv("scaled-tanh", "conv-mutant-unrotated-kernel", bench=(), dims=SQUARE_TABLE,
              backward=partial(conv_record_backward, kernels=unrotated_kernels),
              samplers={"W": uniform_fan_in, "T": full_table},
              expect="reject", expect_kind="values",
              erratum="(L19) input gradient with the kernel not rotated by 180 degrees"),
    make_conv("scaled-tanh", "conv-mutant-table-swapped", bench=(), dims=SQUARE_TABLE,
              backward=conv_table_swapped_backward, expect="reject", expect_kind="mask",
              erratum="(L17) connection table indexed T[d, p] instead of T[p, d] in dW"),
    make_conv("scaled-tanh", "conv-mutant-dw-rotated", bench=(), dims=SQUARE_TABLE,
              backward=partial(conv_record_backward, wgrad=weight_grad_rotated),
              expect="reject", expect_kind="flipped",
              erratum="(L17) dW turned by 180 degrees: the true convolution's weight gradient "
                      "used with the correlation forward (L1)"),
    make_pool("scaled-tanh", 2, "meanpool-mutant-no-area", bench=(),
              backward=partial(pool_record_backward, scale=lambda p: 1.0), expect="reject",
              expect_kind="factor", erratum="(L23) the 1/p^2 of the mean left out"),
    make_pool("scaled-tanh", 2, "meanpool-source-p2", bench=(), dims=EVEN_SIZES,
              backward=partial(pool_record_backward, index=source_window_index,
                               scale=source_scale),
              variant={"layer": "trainable mean-pool", "g": "scaled-tanh", "p": "2",
                       "formulas": "source 3.4 step 2 as written"}),
    make_pool("scaled-tanh", 3, "meanpool-mutant-quarter-at-p3", bench=(),
              backward=partial(pool_record_backward, scale=source_scale), expect="reject",
              expect_kind="factor",
              erratum="(L23) the source's w/4, right for 2x2 windows, kept for 3x3 windows: "
                      "d mean / d element is 1/9 there"),
    make_pool("scaled-tanh", 3, "meanpool-mutant-halved-index-at-p3", bench=(),
              dims=P3_TWO_WINDOWS,
              backward=partial(pool_record_backward, index=source_window_index),
              expect="reject", expect_kind="values",
              erratum="(L23) the source's window index [(i+1)/2], right for 2x2 windows, kept "
                      "for 3x3 windows: position i lies in window ceil(i/3)"),
]
