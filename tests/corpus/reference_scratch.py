"""Independent PyTorch programs for the from-scratch corpus modules (:mod:`.scratch_dl`,
:mod:`.lenet_scratch`, :mod:`.rnn_scratch`), written from each layer's definition in the
reference's own layout (NCHW, biases of shape (F,), batch-first)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dense(x, W, w0):
    """x: (N, D), W: (D, M), w0: (M,)."""
    return x @ W + w0


def binary_cross_entropy(y, p):
    """Elementwise, unreduced: -y log p - (1 - y) log(1 - p)."""
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def conv_valid(x, W, b):
    """x: (N, C, H, W), W: (F, C, K, K), b: (F,): stride 1, no padding."""
    return F.conv2d(x, W, b)


def softmax_cross_entropy(scores, y):
    return F.cross_entropy(scores, y)


def rnn_cell_columns(xt, a_prev, Wax, Waa, Wya, ba, by):
    """Examples as columns: xt: (n_x, m), a_prev: (n_a, m), ba: (n_a, 1)."""
    return torch.tanh(Wax @ xt + Waa @ a_prev + ba)


def rnn_step(x, h_prev, Wx, Wh, b):
    return torch.tanh(x @ Wx + h_prev @ Wh + b)


def rnn_unrolled(x, h0, Wx, Wh, b):
    """x: (T, N, D) -> h: (T, N, H)."""
    h, states = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ Wx + h @ Wh + b)
        states.append(h)
    return torch.stack(states)
