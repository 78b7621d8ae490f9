"""Softmax cross-entropy in plain PyTorch, for ``derivations/fn_softmax_ce.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def loss(z, y):
    """Summed over the batch: z (N, C) logits, y (N,) integer labels; the page's m, log P and P
    (derivations/fn_softmax_ce.md) as named intermediates."""
    logp = torch.log_softmax(z, dim=1)
    named = {"m": z.max(dim=1).values, "logP": logp, "P": logp.exp()}
    return F.cross_entropy(z, y.long(), reduction="sum"), named
