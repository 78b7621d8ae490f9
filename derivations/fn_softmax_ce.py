"""Softmax and cross-entropy fused into one custom autograd Function: see ``fn_softmax_ce.md``.

z (N, C) logits, y (N,) labels in [0, C)  ->  L = -sum_n log softmax(z_n)[y_n], a scalar.
The page writes the logits z as a (z is a recurrent step's pre-activation in the catalogue),
the Function's output L as O and its upstream gradient dL as O-bar (L is whatever scalar follows
the Function), p as P, the one-hot as E and the row maximum as m (one letter, one meaning:
notation.md).
"""

from __future__ import annotations

import torch

from handgrad import adapt
from reference import fn_softmax_ce as ref


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    shifted = z - z.max(dim=1, keepdim=True).values.detach()           # (SC1)
    return shifted - shifted.exp().sum(dim=1, keepdim=True).log()      # (SC2)


def one_hot(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like).scatter_(1, y.long()[:, None], 1.0)


class SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, y):
        ctx.save_for_backward(z, y)
        return -log_softmax(z).gather(1, y.long()[:, None]).sum()      # (SC3)

    @staticmethod
    def backward(ctx, dL):
        z, y = ctx.saved_tensors
        p = log_softmax(z).exp()                                       # (SC4)
        dz = dL * (p - one_hot(y, p))                                  # (SC5)
        return dz, None


class SavesProbabilities(torch.autograd.Function):
    """Mistake: saves p from forward (neither input nor output): pytorch issue 104040.

    First derivatives and ``gradcheck`` are right; the double backward takes p for a constant
    and returns a zero Hessian.
    """

    @staticmethod
    def forward(ctx, z, y):
        logp = log_softmax(z)
        ctx.save_for_backward(logp.exp(), y)
        return -logp.gather(1, y.long()[:, None]).sum()

    @staticmethod
    def backward(ctx, dL):
        p, y = ctx.saved_tensors
        return dL * (p - one_hot(y, p)), None


class SubtractsInPlace(SavesProbabilities):
    """Mistake: the textbook p[range(N), y] -= 1, written into the saved probabilities (the
    forward that saves them is :class:`SavesProbabilities`')."""

    @staticmethod
    def backward(ctx, dL):
        p, y = ctx.saved_tensors
        p[torch.arange(p.shape[0]), y.long()] -= 1.0
        return dL * p, None


class MeanInBackward(SoftmaxCrossEntropy):
    """Mistake: (SC5) divided by N, the gradient of the mean, for a summed loss."""

    @staticmethod
    def backward(ctx, dL):
        dz, _ = SoftmaxCrossEntropy.backward(ctx, dL)
        return dz / dz.shape[0], None


FIELDS = {
    "shapes": "z: N C, y: N",
    "dims": {"N": (1, 5), "C": (2, 6)},
    "labels": {"y": "C"},
    "reference": ref.loss,
    "tags": {"z": "SC5"},
    "output": (),
    "symbols": {"a": "z"},
    # (SC4) P = exp(log P) is an identity on the reference's P: it cannot fail, so it is not
    # counted as checked
    "equations": ("SC1", "SC2", "SC3", "SC5"),
}

RECORDS = [
    adapt.function("fn-softmax-ce", SoftmaxCrossEntropy, bench=({"N": 256, "C": 1000},),
                   **FIELDS),
    adapt.function("fn-softmax-ce-saves-p", SavesProbabilities, expect="reject",
                   expect_kind="saved-intermediate",
                   erratum="saves p (SC4) from forward: the double backward takes it for a "
                           "constant, so the Hessian of the loss in z comes out zero", **FIELDS),
    adapt.function("fn-softmax-ce-in-place", SubtractsInPlace, expect="reject",
                   expect_kind="mutated-cache",
                   erratum="(SC5) as p[range(N), y] -= 1 on the saved p: a second backward "
                           "subtracts the one-hot again", **FIELDS),
    adapt.function("fn-softmax-ce-mean", MeanInBackward, expect="reject", expect_kind="factor",
                   erratum="(SC5) divided by N: the gradient of the mean loss", **FIELDS),
]
