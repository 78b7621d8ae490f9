"""The vanilla RNN's hidden states in plain PyTorch, for ``derivations/fn_rnn.py``: the loop over
time, differentiated by autograd (which does backpropagation through time itself)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def states(x, h0, U, W, b):
    """H (T, B, M): h_t = tanh(W x_t + U h_{t-1} + b) for x (T, B, D), h0 (B, M)."""
    h, hs, zs = h0, [], []
    for x_t in x.unbind(0):
        z = F.linear(x_t, W, b) + F.linear(h, U)
        h = torch.tanh(z)
        hs.append(h)
        zs.append(z)
    # the steps, for the page's equations (derivations/fn_rnn.md): their gradients are total
    return torch.stack(hs), {"z_t": zs, "h_t": hs}
