"""The vanilla RNN's hidden states in plain PyTorch, for ``derivations/fn_rnn.py``: the loop over
time, differentiated by autograd (which does backpropagation through time itself)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def states(x, h0, U, W, b):
    """H (T, B, M): h_t = tanh(W x_t + U h_{t-1} + b) for x (T, B, D), h0 (B, M)."""
    h, hs = h0, []
    for x_t in x.unbind(0):
        h = torch.tanh(F.linear(x_t, W, b) + F.linear(h, U))
        hs.append(h)
    return torch.stack(hs)
