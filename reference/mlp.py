"""The one-hidden-layer MLP in PyTorch: the oracle's program for ``derivations/mlp.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda a: a,
}


def loss(x, y, W1, b1, W2, b2, *, loss: str, f1: str, f2: str, lam: float):
    """Summed batch loss plus (lam/2)(|W1|^2 + |W2|^2), and the named intermediates."""
    a1 = F.linear(x, W1, b1)
    z = ACTIVATIONS[f1](a1)
    a2 = F.linear(z, W2, b2)
    if loss == "ce":
        yhat = torch.softmax(a2, dim=1)
        data = -torch.log(yhat.gather(1, y.long().unsqueeze(1))).sum()
    else:
        yhat = ACTIVATIONS[f2](a2)
        data = 0.5 * ((yhat - y) ** 2).sum()
    decay = 0.5 * lam * (W1.pow(2).sum() + W2.pow(2).sum())
    return data + decay, {"yhat": yhat, "a2": a2, "z": z, "a1": a1}
