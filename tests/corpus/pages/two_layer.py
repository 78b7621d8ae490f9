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


def record(name: str, page: str, backward=backward, **changes):
    """The student's record: their code (or none), their page, the reference. ``symbols``: the
    page's letters the code spells otherwise, one line each."""
    from pathlib import Path

    from handgrad import Derivation

    return Derivation(
        name=name, forward=forward, backward=backward, reference=reference,
        inputs="X: n0 m, Y: n2 m, W1: n1 n0, b1: n1 1, W2: n2 n1, b2: n2 1",
        dims={"m": (1, 5), "n0": (1, 4), "n1": (2, 5), "n2": (2, 4)},
        nondiff={"X", "Y"}, samplers={"Y": one_hot_columns},
        intermediates=("Z2", "Z1"), tags={"Z2": "6", "W2": "7", "b2": "8", "Z1": "9",
                                          "W1": "10", "b1": "11"},
        page=str(Path(__file__).with_name(page)),
        symbols=SYMBOLS, **changes)


SYMBOLS = {
    r"\mathcal L": "L", r"\hat Y": "A2",
    "W^{[1]}": "W1", "b^{[1]}": "b1", "W^{[2]}": "W2", "b^{[2]}": "b2",
    "Z^{[1]}": "Z1", "A^{[1]}": "A1", "Z^{[2]}": "Z2",
    r"\delta^{(1)}": r"\frac{\partial L}{\partial Z^{[1]}}",
    r"\delta^{(2)}": r"\frac{\partial L}{\partial Z^{[2]}}",
}
