"""A student's two-layer network, written the way the deep-learning course writes it: examples
as the COLUMNS of X (n0, m), parameters W1 (n1, n0), b1 (n1, 1), one-hot labels Y (n2, m), the
loss summed over the examples. The comments cite the equations of ``two_layer.md``.

``backward_sigma_for_prime`` is the same code with one transcription slip in (9): the page is
right there, the code is not.
"""

from __future__ import annotations

import numpy as np
import torch


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(X, Y, W1, b1, W2, b2):
    Z1 = W1 @ X + b1                                          # (1)
    A1 = sigmoid(Z1)                                          # (2)
    Z2 = W2 @ A1 + b2                                         # (3)
    Z2s = Z2 - Z2.max(axis=0, keepdims=True)
    A2 = np.exp(Z2s) / np.exp(Z2s).sum(axis=0, keepdims=True)  # (4)
    cost = -np.sum(Y * np.log(A2))                            # (5)
    return cost, (X, Y, W1, W2, A1, A2)


def backward(dcost, cache):
    X, Y, W1, W2, A1, A2 = cache
    dZ2 = dcost * (A2 - Y)                                    # (6)
    dW2 = dZ2 @ A1.T                                          # (7)
    db2 = dZ2.sum(axis=1, keepdims=True)                      # (8)
    dZ1 = (W2.T @ dZ2) * A1 * (1 - A1)                        # (9)
    dW1 = dZ1 @ X.T                                           # (10)
    db1 = dZ1.sum(axis=1, keepdims=True)                      # (11)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "Z2": dZ2, "Z1": dZ1}


def backward_sigma_for_prime(dcost, cache):
    X, Y, W1, W2, A1, A2 = cache
    dZ2 = dcost * (A2 - Y)                                    # (6)
    dW2 = dZ2 @ A1.T                                          # (7)
    db2 = dZ2.sum(axis=1, keepdims=True)                      # (8)
    dZ1 = (W2.T @ dZ2) * A1                                   # (9)
    dW1 = dZ1 @ X.T                                           # (10)
    db1 = dZ1.sum(axis=1, keepdims=True)                      # (11)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "Z2": dZ2, "Z1": dZ1}


def reference(X, Y, W1, b1, W2, b2):
    """The same network in PyTorch, written independently: log-softmax over each column."""
    Z1 = W1 @ X + b1
    A1 = torch.sigmoid(Z1)
    Z2 = W2 @ A1 + b2
    cost = -(Y * torch.log_softmax(Z2, dim=0)).sum()
    return cost, {"Z2": Z2, "Z1": Z1, "A1": A1, "A2": torch.softmax(Z2, dim=0)}


def one_hot_columns(rng, shape, dims):
    """Y (n2, m): one 1 per column, at a random class."""
    Y = np.zeros(shape)
    Y[rng.integers(0, shape[0], size=shape[1]), np.arange(shape[1])] = 1.0
    return Y
