"""LeNet-5's connection-table convolution in plain PyTorch, for ``derivations/fn_table_conv.py``.

Written independently of the Function: one single-channel ``conv2d`` per connection (c, d) that
the table switches on, summed into output map d, instead of one convolution with masked weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

A, S = 1.7159, 2.0 / 3.0  # LeCun's scaled tanh, f(a) = A tanh(S a)


def table_conv(X, W, b, T):
    """Y (N, D, Ho, Wo) = f(b_d + sum over connected c of X_c (*) W_dc), X (N, C, H, W)."""
    maps = []
    for d in range(W.shape[0]):
        Yt_d = b[d] + torch.zeros_like(X[:, 0, : X.shape[2] - W.shape[2] + 1,
                                         : X.shape[3] - W.shape[3] + 1])
        for c in range(W.shape[1]):
            if T[c, d]:
                Yt_d = Yt_d + F.conv2d(X[:, c : c + 1], W[d : d + 1, c : c + 1])[:, 0]
        maps.append(Yt_d)
    Yt = torch.stack(maps, dim=1)
    return A * torch.tanh(S * Yt)
