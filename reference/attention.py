"""Scaled dot-product attention in PyTorch: the oracle's program for ``derivations/attention.py``.

Batch first: Q (B, T, d), K (B, S, d), V (B, S, dv); with projections x (B, T, m), Wq (m, d),
Wk (m, d), Wv (m, dv). The causal mask sets the score of key j > query i to -inf before the
softmax (``masked_fill``), so its gradient there is exactly zero.
"""

from __future__ import annotations

import math

import torch


def attention(Q, K, V, *, causal: bool):
    """softmax(mask(Q K^T / sqrt(d))) V, and the intermediates P and the unmasked scores."""
    scores = torch.einsum("btd,bsd->bts", Q, K) / math.sqrt(Q.shape[-1])
    logits = scores
    if causal:
        T, S = scores.shape[-2:]
        future = torch.ones(T, S, dtype=torch.bool).triu(diagonal=1)
        logits = scores.masked_fill(future, float("-inf"))
    P = torch.softmax(logits, dim=-1)
    # logits and mask are the page's tilde A and mathcal M (derivations/attention.md)
    inter = {"P": P, "scores": scores, "logits": logits}
    if causal:
        inter["mask"] = torch.zeros(T, S, dtype=scores.dtype).masked_fill(future, float("-inf"))
    return torch.einsum("bts,bse->bte", P, V), inter


def self_attention(x, Wq, Wk, Wv, *, causal: bool):
    """``attention`` of the projections x Wq, x Wk, x Wv; the intermediates add Q, K, V."""
    Q, K, V = x @ Wq, x @ Wk, x @ Wv
    out, inter = attention(Q, K, V, causal=causal)
    return out, {**inter, "Q": Q, "K": K, "V": V}
