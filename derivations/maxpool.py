"""Max-pooling over kh x kw windows with stride (sh, sw), no padding: see ``maxpool.md``.

Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo), Ho = (H - kh) // sh + 1, Wo = (W - kw) // sw + 1.
Windows may overlap (stride < window) and need not be square. A window whose maximum is tied
sends its gradient to the first maximal element in row-major order, as torch's max_pool2d does.

Both passes are tap by tap: tap t = (i, j) of every window at once is the strided view
x[:, :, i::sh, j::sw] cut to (Ho, Wo), so the forward makes kh*kw passes over output-sized
arrays and never copies the windows, and the backward is one scatter-add of the upstream
gradient at the flat input index of each window's maximum. The page writes y as O, the channels
C as D, H, W as n_H, n_W and the tap t as kappa (one letter, one meaning: notation.md).

The records sample Ho, Wo and a remainder 0 <= R - 1 < s and derive H = (Ho - 1) sh + kh + R - 1
(the same for W), so every case is valid and the leftover rows and columns, whose gradient is
zero, are exercised.

What the oracles can say at a kink: S = sum(dout * y) is piecewise linear in x. The records with
continuous inputs keep every window's top two values at least 1e-3 apart (``kink_distance``), so
finite differences never straddle a switch of a maximum. The Taylor test perturbs by steps up to
1, which do cross switches: its remainder is zero to rounding below the first switch and grows
linearly beyond it, so a slope fitted above the round-off floor comes out near 1 although the
gradient is exact; a kink-aware test reads the remainder falling to the floor at small steps as
"first-order model exact". ``maxpool-ties`` sits on ties by design: autograd is the oracle that
can judge it (torch breaks ties by (P3)); finite differences there see one-sided derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import maxpool as ref


@dataclass
class Cache:
    x: np.ndarray        # (N, C, H, W), held for the kink distance; the backward reads its shape
    switch: np.ndarray   # (N, C, Ho, Wo) tap t = i * kw + j of each window's maximum
    window: tuple[int, int]
    stride: tuple[int, int]


def output_size(n: int, k: int, s: int) -> int:
    """Windows of size k at stride s that fit in n positions (P1)."""
    return (n - k) // s + 1


def tap(x: np.ndarray, i: int, j: int, out_hw: tuple[int, int],
        stride: tuple[int, int]) -> np.ndarray:
    """x[n, c, oh * sh + i, ow * sw + j] for every window (oh, ow): a (N, C, Ho, Wo) view."""
    (Ho, Wo), (sh, sw) = out_hw, stride
    return x[:, :, i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw]


def forward(x: np.ndarray, *, window: tuple[int, int], stride: tuple[int, int]):
    """y (N, C, Ho, Wo), the maximum of each window, and the cache."""
    (kh, kw), (sh, sw) = window, stride
    N, C, H, W = x.shape
    out_hw = (output_size(H, kh, sh), output_size(W, kw, sw))             # (P1)
    y = tap(x, 0, 0, out_hw, stride).copy()
    switch = np.zeros(y.shape, np.intp)
    greater = np.empty(y.shape, bool)
    for t in range(1, kh * kw):
        candidate = tap(x, t // kw, t % kw, out_hw, stride)
        # Strictly greater: a later tap equal to the maximum so far never takes over, so ties
        # go to the first maximal element in row-major order (torch's choice).
        np.greater(candidate, y, out=greater)                             # (P3)
        np.copyto(switch, t, where=greater)                               # (P3)
        np.maximum(y, candidate, out=y)                                   # (P2)
    return y, Cache(x, switch, window, stride)


def source_index(c: Cache, row_of, col_of) -> np.ndarray:
    """Flat index into x (N*C*H*W) of each window's maximum, (N, C, Ho, Wo); ``row_of`` and
    ``col_of`` decode a tap number into its row and column inside the window."""
    N, C, H, W = c.x.shape
    _, _, Ho, Wo = c.switch.shape
    (kh, kw), (sh, sw) = c.window, c.stride
    taps = np.arange(kh * kw)
    offset = row_of(taps) * W + col_of(taps)          # of each tap from its window's corner
    plane = (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
    corner = plane + (np.arange(Ho) * (sh * W))[:, None] + np.arange(Wo) * sw
    return corner + offset[c.switch]


def backward(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dy = dL/dy (N, C, Ho, Wo) -> {"x": dL/dx (N, C, H, W)}."""
    kw = c.window[1]
    source = source_index(c, lambda t: t // kw, lambda t: t % kw)              # (P4)
    # Overlapping windows can share a maximum, so the scatter must add, never overwrite.
    dx = np.bincount(source.ravel(), weights=dy.ravel(), minlength=c.x.size)  # (P5)
    return {"x": dx.reshape(c.x.shape).astype(c.x.dtype, copy=False)}


def top_two_gap(x: np.ndarray, window: tuple[int, int], stride: tuple[int, int]) -> float:
    """The smallest gap between the largest and second largest value of any window: how far
    the point is from a switch of some window's maximum (a kink of y)."""
    (kh, kw), (sh, sw) = window, stride
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    flat = windows.reshape(*windows.shape[:4], kh * kw)
    top = -np.partition(-flat, 1, axis=-1)[..., :2]
    return float((top[..., 0] - top[..., 1]).min())


def kink_distance(c: Cache) -> float:
    return top_two_gap(c.x, c.window, c.stride)


def quantized(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Values on the grid {-3, ..., 3} / 4: seven levels, so most windows hold a tied maximum."""
    return rng.integers(-3, 4, size=shape) / 4.0


def derive(window: tuple[int, int], stride: tuple[int, int]):
    """H and W from the output size and the (R - 1) rows/columns left over past the last
    window (0 <= R - 1 < stride), so that every sampled case is valid and (P1) holds exactly."""
    (kh, kw), (sh, sw) = window, stride
    return lambda d: {"H": (d["Ho"] - 1) * sh + kh + d["Rh"] - 1,
                      "W": (d["Wo"] - 1) * sw + kw + d["Rw"] - 1}


def flop_count(window: tuple[int, int]):
    """kh*kw - 1 comparisons per output in the forward and one addition in the scatter."""
    kh, kw = window
    return lambda d: float(d["N"] * d["C"] * d["Ho"] * d["Wo"] * kh * kw)


def label(window: tuple[int, int], stride: tuple[int, int]) -> str:
    (kh, kw), (sh, sw) = window, stride
    return f"{kh}x{kw}" + ("" if (sh, sw) == (kh, kw) else f"-s{sh}" if sh == sw else
                           f"-s{sh}x{sw}")


def make(window: tuple[int, int], stride: tuple[int, int], **changes) -> Derivation:
    """The record of one window and stride; ``changes`` overrides record fields."""
    fields = {
        "name": f"maxpool-{label(window, stride)}",
        "forward": partial(forward, window=window, stride=stride),
        "backward": backward,
        "reference": partial(ref.max_pool, window=window, stride=stride),
        "inputs": {"x": ("N", "C", "H", "W")},
        "dims": {"N": (1, 3), "C": (1, 3), "Ho": (1, 4), "Wo": (1, 4),
                 "Rh": (1, stride[0]), "Rw": (1, stride[1])},
        "derive": derive(window, stride),
        "output": ("N", "C", "Ho", "Wo"),
        "tags": {"x": "P5"},
        "kink_distance": kink_distance,
        "variant": {"window": f"{window[0]}x{window[1]}", "stride": f"{stride[0]}x{stride[1]}"},
        "flops": flop_count(window),
    }
    return Derivation(**{**fields, **changes})


RECORDS = [
    make((2, 2), (2, 2), bench=({"N": 64, "C": 16, "Ho": 14, "Wo": 14, "Rh": 1, "Rw": 1},)),
    make((3, 3), (1, 1), bench=({"N": 64, "C": 16, "Ho": 26, "Wo": 26, "Rh": 1, "Rw": 1},)),
    make((2, 3), (1, 2)),
    make((2, 3), (2, 3)),
    # Ties on purpose: the values sit on a coarse grid and no redraw keeps them apart, so the
    # tie-breaking of (P3) decides the gradient and must match torch's exactly.
    make((3, 3), (2, 2), name="maxpool-ties", samplers={"x": quantized}, kink_distance=None,
         variant={"window": "3x3", "stride": "2x2", "inputs": "quantized to 7 levels"}),
]
