"""Bugs people make deriving LeNet-5 by hand, beyond the source's own: each must be caught and
diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py."""

from __future__ import annotations

from functools import partial

import numpy as np

from derivations._lenet5_kernels import chwn, switch_on, uniform_fan_in, weight_grad
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


def full_table(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Every input map feeds every output map, so every input gradient map is exercised."""
    return np.ones(shape, dtype=np.int64)


SQUARE_TABLE = {"N": (2, 2), "C": (3, 3), "D": (3, 3), "kh": (2, 3), "kw": (2, 3),
                "Ho": (2, 3), "Wo": (2, 3)}

RECORDS = [
    make_conv("scaled-tanh", "conv-mutant-unrotated-kernel", bench=(), dims=SQUARE_TABLE,
              backward=partial(conv_record_backward, kernels=unrotated_kernels),
              samplers={"W": uniform_fan_in, "T": full_table},
              expect="reject", expect_kind="values",
              erratum="(L19) input gradient with the kernel not rotated by 180 degrees"),
    make_conv("scaled-tanh", "conv-mutant-table-swapped", bench=(), dims=SQUARE_TABLE,
              backward=conv_table_swapped_backward, expect="reject", expect_kind="mask",
              erratum="(L17) connection table indexed T[d, p] instead of T[p, d] in dW"),
    make_pool("scaled-tanh", 2, "meanpool-mutant-no-area", bench=(),
              backward=partial(pool_record_backward, scale=lambda p: 1.0), expect="reject",
              expect_kind="factor", erratum="(L23) the 1/p^2 of the mean left out"),
]
