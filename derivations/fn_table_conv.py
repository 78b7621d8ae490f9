"""LeNet-5's connection-table convolution as a custom autograd Function: see ``fn_table_conv.md``.

X (N, C, Hi, Wi), W (D, C, kh, kw), b (D,), T (C, D) in {0, 1}  ->  Y (N, D, Ho, Wo) with
Y = A tanh(S Yt), Yt = b + X (*) (W masked by T). The backward recomputes the masked kernels
from the saved W and T, so that the double backward through it sees their dependence on W.
The page writes C, D as D_in, D_out, (Hi, Wi) and (Ho, Wo) as (n_H, n_W) and (n_H', n_W'), the
table T as calligraphic T, Wm as W_T, Yt as Y-tilde, each gradient d<v> as v with a bar, and
A, S as their values 1.7159 and 2/3 (A and S are attention's scores and keys in the catalogue;
one letter, one meaning: notation.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight

from derivations._lenet5_kernels import random_table, uniform_fan_in
from handgrad import adapt
from reference import fn_table_conv as ref

A, S = 1.7159, 2.0 / 3.0


def masked(W: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    return W * T.t().to(W.dtype)[:, :, None, None]                     # (TC1)


class TableConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, W, b, T):
        Wm = masked(W, T)
        Yt = F.conv2d(X, Wm, b)                                        # (TC2)
        Y = A * torch.tanh(S * Yt)                                     # (TC3)
        ctx.save_for_backward(X, W, T, Y)
        return Y

    @staticmethod
    def backward(ctx, dY):
        X, W, T, Y = ctx.saved_tensors
        Wm = masked(W, T)
        dYt = dY * S * (A - Y * Y / A)                                 # (TC4)
        dX = conv2d_input(X.shape, Wm, dYt)                            # (TC5)
        dWm = conv2d_weight(X, Wm.shape, dYt)                          # (TC6)
        dW = masked(dWm, T)                                            # (TC7)
        db = dYt.sum(dim=(0, 2, 3))                                    # (TC8)
        return dX, dW, db, None


class SavesMaskedKernels(torch.autograd.Function):
    """Mistake: saves W * T, computed in forward without a graph (pytorch issue 104040).

    First derivatives and ``gradcheck`` are right; the double backward takes W * T for a
    constant and loses d(dX)/dW, so the Hessian is silently wrong.
    """

    @staticmethod
    def forward(ctx, X, W, b, T):
        Wm = masked(W, T)
        Y = A * torch.tanh(S * F.conv2d(X, Wm, b))
        ctx.save_for_backward(X, Wm, T, Y)
        return Y

    @staticmethod
    def backward(ctx, dY):
        X, Wm, T, Y = ctx.saved_tensors
        dYt = dY * S * (A - Y * Y / A)
        return (conv2d_input(X.shape, Wm, dYt), masked(conv2d_weight(X, Wm.shape, dYt), T),
                dYt.sum(dim=(0, 2, 3)), None)


class ViewsUpstream(TableConv):
    """Mistake: sums the bias gradient over a .view of dY, which needs contiguous memory.

    Fine on the contiguous upstream gradient that ``gradcheck`` passes, a RuntimeError on the
    transposed one a real graph passes: diagnosed as an upstream-layout error.
    """

    @staticmethod
    def backward(ctx, dY):
        Y = ctx.saved_tensors[3]
        dX, dW, _, _ = TableConv.backward(ctx, dY)
        N, D = dY.shape[:2]
        dYt = dY.view(N, D, -1) * S * (A - Y.reshape(N, D, -1) ** 2 / A)
        return dX, dW, dYt.sum(dim=(0, 2)), None


class ForgetsTable(TableConv):
    """Mistake: dX through the unmasked kernels W (the table applied in forward only)."""

    @staticmethod
    def backward(ctx, dY):
        X, W, T, Y = ctx.saved_tensors
        _, dW, db, _ = TableConv.backward(ctx, dY)
        return conv2d_input(X.shape, W, dY * S * (A - Y * Y / A)), dW, db, None


TAGS = {"W": "TC7", "b": "TC8", "X": "TC5"}
FIELDS = {
    "shapes": "X: N C Hi Wi, W: D C kh kw, b: D, T: C D",
    # Small maps: the double-backward checks (hvp, hvp-fd) cost a few passes per entry; the
    # paper's C3 size is the benchmark's.
    "dims": {"N": (1, 3), "C": (1, 4), "D": (1, 5), "kh": (1, 3), "kw": (1, 3), "Ho": (1, 3),
             "Wo": (1, 3), "Hi": "Ho + kh - 1", "Wi": "Wo + kw - 1"},
    "reference": ref.table_conv,
    "nondiff": {"T"},
    "samplers": {"W": uniform_fan_in, "T": random_table},
    "tags": TAGS,
    "output": ("N", "D", "Ho", "Wo"),
}
C3 = {"N": 16, "C": 6, "D": 16, "kh": 5, "kw": 5, "Ho": 10, "Wo": 10}

RECORDS = [
    adapt.function("fn-table-conv", TableConv, bench=(C3,), **FIELDS),
    adapt.function("fn-table-conv-saves-masked", SavesMaskedKernels, expect="reject",
                   expect_kind="saved-intermediate",
                   erratum="saves the masked kernels W * T (TC1) from forward: the double "
                           "backward takes them for a constant and misses d(dX)/dW", **FIELDS),
    adapt.function("fn-table-conv-view", ViewsUpstream, expect="reject",
                   expect_kind="upstream-layout",
                   erratum="dY.view(N, D, -1) in (TC8): raises when autograd passes a "
                           "non-contiguous dY", **FIELDS),
    adapt.function("fn-table-conv-forgets-table", ForgetsTable, expect="reject",
                   expect_kind="values",
                   erratum="(TC5) through W instead of W * T: gradients flow through "
                           "connections the table switches off", **FIELDS),
]
