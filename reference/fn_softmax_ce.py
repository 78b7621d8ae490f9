"""Softmax cross-entropy in plain PyTorch, for ``derivations/fn_softmax_ce.py``."""

from __future__ import annotations

import torch.nn.functional as F


def loss(z, y):
    """Summed over the batch: z (N, C) logits, y (N,) integer labels."""
    return F.cross_entropy(z, y.long(), reduction="sum")
