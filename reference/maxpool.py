"""Max-pooling in PyTorch: the oracle's program for ``derivations/maxpool.py``.

``F.max_pool2d`` without padding, dilation or ceil mode; its backward routes each window's
gradient to the element its forward picked (for a tied window, the first in row-major order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max_pool(x: torch.Tensor, *, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """x (N, C, H, W) -> (N, C, (H - kh) // sh + 1, (W - kw) // sw + 1)."""
    return F.max_pool2d(x, kernel_size=window, stride=stride)
