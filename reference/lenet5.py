"""LeNet-5 in PyTorch: the oracle's program for ``derivations/lenet5.py`` and ``lenet5_layers.py``.

Written from the paper, not from the NumPy code: ``conv2d`` (a cross-correlation) on the weights
multiplied by the connection table, ``avg_pool2d`` for the 2x2 (p x p) means, ``linear`` and
``cross_entropy`` for F6 and the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {
    "scaled-tanh": lambda a: 1.7159 * torch.tanh(a * (2.0 / 3.0)),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}


def table_conv(X, W, b, T):
    """conv2d of X (N, C, H, W) with the kernels W (D, C, kh, kw) that T (C, D) switches on."""
    return F.conv2d(X, W * T.t().to(W.dtype)[:, :, None, None], b)


def scaled_pool(Y, w, a, p: int):
    """w * (mean of each p x p window) + a, per map."""
    return w[None, :, None, None] * F.avg_pool2d(Y, p) + a[None, :, None, None]


def conv_layer(X, W, b, T, *, f: str):
    Yt = table_conv(X, W, b, T)
    return ACTIVATIONS[f](Yt), {"Yt": Yt}


def true_conv_layer(X, W, b, T, *, f: str):
    """The convolution layer with a true (flipped) convolution: conv2d with W turned by 180."""
    return conv_layer(X, torch.flip(W, dims=(2, 3)), b, T, f=f)


def pool_layer(Y, w, a, *, p: int, g: str):
    Xt = scaled_pool(Y, w, a, p)
    return ACTIVATIONS[g](Xt), {"Xt": Xt}


def trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, *, f: str, p: int):
    """C1 to F6: F6's output Y4 (N, F), and every block's tensors named as in ``lenet5.md``."""
    act = ACTIVATIONS[f]
    full1 = torch.ones(W1.shape[1], W1.shape[0], dtype=torch.int64)
    full3 = torch.ones(W3.shape[1], W3.shape[0], dtype=torch.int64)
    Yt1 = table_conv(X0, W1, b1, full1)
    Y1 = act(Yt1)
    Xt1 = scaled_pool(Y1, w1, a1, p)
    X1 = act(Xt1)
    Yt2 = table_conv(X1, W2, b2, T2)
    Y2 = act(Yt2)
    Xt2 = scaled_pool(Y2, w2, a2, p)
    X2 = act(Xt2)
    Yt3 = table_conv(X2, W3, b3, full3)
    Y3 = act(Yt3)
    Yt4 = F.linear(Y3.flatten(1), W4, b4)
    Y4 = act(Yt4)
    named = {"Y4": Y4, "Yt4": Yt4, "Y3": Y3, "Yt3": Yt3, "X2": X2, "Xt2": Xt2, "Y2": Y2,
             "Yt2": Yt2, "X1": X1, "Xt1": Xt1, "Y1": Y1, "Yt1": Yt1}
    return Y4, named


def lenet5(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, W5, b5, y, *, f: str, p: int):
    """Summed cross-entropy of the batch over the scores Z, and the named tensors."""
    Y4, named = trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, f=f, p=p)
    Z = F.linear(Y4, W5, b5)
    loss = F.cross_entropy(Z, y.long(), reduction="sum")
    return loss, {"Z": Z, **named}
