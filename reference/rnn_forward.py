"""The vanilla RNN in PyTorch with its hidden states as plain tensors: the oracle's program for
``derivations/rnn_forward.py``.

Time-major: x (T, B, D), h0 (B, M), U (M, M), W (M, D), b (M,), V (C, M), c (C,); labels
y (T, B) for cross-entropy, targets y (T, B, C) for L2. The loss is summed over time and batch.

Unlike ``reference/rnn.py``, which names zero probes so that autograd reports the total dL/dh_t,
this program names the stacked z_t, h_t and a_t themselves: ``torch.func.jvp`` then gives their
tangents, which is what a forward-mode derivation reports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def total_loss(x, y, h0, U, W, b, V, c, *, f: str, loss: str):
    """L summed over steps and batch, and the stacks z (T, B, M), h (T, B, M), a (T, B, C)."""
    h = h0
    zs, hs = [], []
    for x_t in x.unbind(0):
        z = h @ U.T + x_t @ W.T + b
        h = ACTIVATIONS[f](z)
        zs.append(z)
        hs.append(h)
    a = F.linear(torch.stack(hs), V, c)
    if loss == "ce":
        total = F.cross_entropy(a.flatten(0, 1), y.long().flatten(), reduction="sum")
    else:
        total = 0.5 * ((a - y) ** 2).sum()
    return total, {"z": torch.stack(zs), "h": torch.stack(hs), "a": a}
