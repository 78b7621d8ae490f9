"""Binary logistic regression whose parameters are module globals, as a notebook keeps them:
``W: (D,)`` and ``b: ()`` live here, and ``loss(X, y)`` reads them."""

from __future__ import annotations

import numpy as np

W = None
b = None


def loss(X, y):
    """Mean binary cross-entropy of sigmoid(X W + b) against y in {0, 1}; X: (N, D), y: (N,)."""
    N = X.shape[0]
    p = 1 / (1 + np.exp(-(X @ W + b)))
    value = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    dz = (p - y) / N
    grads = {"W": X.T @ dz, "b": dz.sum()}
    return value, grads


def loss_sign_flipped(X, y):
    """The gradient of the log-likelihood (y - p), which the loss is the negative of."""
    N = X.shape[0]
    p = 1 / (1 + np.exp(-(X @ W + b)))
    value = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    dz = (y - p) / N
    grads = {"W": X.T @ dz, "b": dz.sum()}
    return value, grads
