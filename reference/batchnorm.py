"""Batch normalisation in training mode, in PyTorch: the oracle's program for
``derivations/batchnorm.py``.

The statistics come from ``torch.var_mean`` with ``correction=0`` (the biased variance, the one
``F.batch_norm`` normalises by in training), so the variance is a function of x alone and its
gradient flows to x directly, not through the mean as in the hand derivation's staging.
``tests/test_batchnorm.py`` checks this program against ``F.batch_norm`` itself.
"""

from __future__ import annotations

import torch


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, *, eps: float):
    """y = gamma (x - mean) / sqrt(var + eps) + beta per feature (axis 1), statistics over every
    other axis; returns y and the tensors named xhat, var, mu (var and mu of shape (F,))."""
    dims = [0, *range(2, x.dim())]
    var, mu = torch.var_mean(x, dim=dims, correction=0)
    shape = [1, -1] + [1] * (x.dim() - 2)
    xc = x - mu.view(shape)
    inv_std = torch.rsqrt(var + eps)
    xhat = xc * inv_std.view(shape)
    y = gamma.view(shape) * xhat + beta.view(shape)
    # xc and inv_std are the page's xi and r (derivations/batchnorm.md)
    return y, {"xhat": xhat, "var": var, "mu": mu, "xc": xc, "inv_std": inv_std}
