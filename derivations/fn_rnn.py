"""The vanilla RNN over T steps as one custom autograd Function, backpropagation through time
inside its backward: see ``fn_rnn.md``.

x (T, B, D), h0 (B, M), U (M, M), W (M, D), b (M,)  ->  H (T, B, M), the hidden states.
The page writes the output H as O (H is the LSTM's hidden size in the catalogue) and each
gradient d<v> as v with a bar, the upstream dH as O-bar (one letter, one meaning: notation.md).
"""

from __future__ import annotations

import torch

from handgrad import adapt
from reference import fn_rnn as ref


class RNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, U, W, b):
        h, hs = h0, []
        for x_t in x.unbind(0):
            h = torch.tanh(x_t @ W.T + h @ U.T + b)                    # (RN1) (RN2)
            hs.append(h)
        H = torch.stack(hs)
        ctx.save_for_backward(x, h0, U, W, H)
        return H

    @staticmethod
    def backward(ctx, dH):
        x, h0, U, W, H = ctx.saved_tensors
        previous = torch.cat([h0[None], H[:-1]])                       # h_{t-1} for every t
        dU, dW, db = torch.zeros_like(U), torch.zeros_like(W), torch.zeros_like(H[0, 0])
        dh_next, dxs = torch.zeros_like(h0), []
        for t in reversed(range(x.shape[0])):
            dh = dH[t] + dh_next                                       # (RN3)
            dz = dh * (1.0 - H[t] * H[t])                              # (RN4)
            dU = dU + dz.T @ previous[t]                               # (RN5)
            dW = dW + dz.T @ x[t]                                      # (RN6)
            db = db + dz.sum(dim=0)                                    # (RN7)
            dxs.append(dz @ W)                                         # (RN8)
            dh_next = dz @ U                                           # (RN9)
        return torch.stack(dxs[::-1]), dh_next, dU, dW, db             # dh0: (RN10)


class SquaresSavedStates(RNN):
    """Mistake: 1 - h_t^2 computed in the memory of the saved states (H.mul_(H) ...).

    The first backward is right and ``gradcheck`` raises only through torch's version counter,
    but a second backward on the same graph (``retain_graph=True``) reads 1 - h^2 where h was:
    diagnosed as a mutated cache.
    """

    @staticmethod
    def backward(ctx, dH):
        x, h0, U, W, H = ctx.saved_tensors
        previous = torch.cat([h0[None], H[:-1]])
        slope = H.mul_(H).neg_().add_(1.0)
        dU, dW, db = torch.zeros_like(U), torch.zeros_like(W), torch.zeros_like(H[0, 0])
        dh_next, dxs = torch.zeros_like(h0), []
        for t in reversed(range(x.shape[0])):
            dz = (dH[t] + dh_next) * slope[t]
            dU, dW, db = dU + dz.T @ previous[t], dW + dz.T @ x[t], db + dz.sum(dim=0)
            dxs.append(dz @ W)
            dh_next = dz @ U
        return torch.stack(dxs[::-1]), dh_next, dU, dW, db


class DropsCarriedGradient(RNN):
    """Mistake: (RN3) without the gradient carried back from step t + 1 (no BPTT at all).

    Only the last step's input gradient is right, which the diagnosis names ("only slices [0]
    of 2 along axis 0 (T) are wrong").
    """

    @staticmethod
    def backward(ctx, dH):
        x, h0, U, W, H = ctx.saved_tensors
        previous = torch.cat([h0[None], H[:-1]])
        dz = dH * (1.0 - H * H)
        dU = torch.einsum("tbi,tbj->ij", dz, previous)
        dW = torch.einsum("tbi,tbj->ij", dz, x)
        return dz @ W, dz[0] @ U, dU, dW, dz.sum(dim=(0, 1))


TAGS = {"U": "RN5", "W": "RN6", "b": "RN7", "x": "RN8", "h0": "RN10"}
FIELDS = {
    "shapes": "x: T B D, h0: B M, U: M M, W: M D, b: M",
    "dims": {"T": (2, 4), "B": (1, 3), "D": (1, 4), "M": (1, 4)},
    "reference": ref.states,
    "fan_in": {"U": "M", "W": "D"},
    "tags": TAGS,
    "output": ("T", "B", "M"),
}

RECORDS = [
    adapt.function("fn-rnn", RNN, bench=({"T": 32, "B": 16, "D": 32, "M": 64},), **FIELDS),
    adapt.function("fn-rnn-squares-saved", SquaresSavedStates, expect="reject",
                   expect_kind="mutated-cache",
                   erratum="(RN4) computed in place in the saved states H: a second backward "
                           "reads 1 - h^2 where h was", **FIELDS),
    adapt.function("fn-rnn-no-bptt", DropsCarriedGradient, expect="reject", expect_kind="slices",
                   erratum="(RN3) without dh_next: each h_t gets the gradient of its own "
                           "output only; right at the last step alone", **FIELDS),
]
