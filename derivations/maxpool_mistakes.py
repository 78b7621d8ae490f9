"""Mistakes people make deriving the max-pooling backward by hand: each must be caught and
diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py.

``handgrad check maxpool-mistake`` shows each rejected: overwriting on a 3 x 3, stride-1 pooling
(``entries``: only the shared maxima are wrong), decoding by the height on 2 x 3 windows
(``permuted``), every tied maximum on the ties sampler (``subgradient``, from the kink-aware
engine). Each is exact where a quick test looks: without overlap, on square windows, without ties.
"""

from __future__ import annotations

import numpy as np

from derivations import maxpool
from derivations.maxpool import Cache


def overwrite(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(P5) written as an assignment: where windows overlap and share a maximum, the last
    window's gradient replaces the others' instead of adding to them."""
    kw = c.window[1]
    source = maxpool.source_index(c, lambda t: t // kw, lambda t: t % kw)
    dx = np.zeros(c.x.shape, c.x.dtype)
    dx.reshape(-1)[source.ravel()] = dy.ravel()
    return {"x": dx}


def decoded_by_height(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(P4) the column of tap t taken as t % kh where t % kw is meant: right for square windows,
    and for the first kh taps of a kh x kw window with kh < kw; the others land on the wrong
    column of the right window."""
    kh, kw = c.window
    source = maxpool.source_index(c, lambda t: t // kw, lambda t: t % kh)
    dx = np.bincount(source.ravel(), weights=dy.ravel(), minlength=c.x.size)
    return {"x": dx.reshape(c.x.shape).astype(c.x.dtype, copy=False)}


def every_tied_maximum(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(P3) the switch as the mask x == max: a tied window sends its whole gradient to each of
    its maximal elements, not to one."""
    (kh, kw), stride = c.window, c.stride
    out_hw = c.switch.shape[2:]
    y = np.max([maxpool.tap(c.x, i, j, out_hw, stride) for i in range(kh) for j in range(kw)],
               axis=0)
    dx = np.zeros(c.x.shape, c.x.dtype)
    for i in range(kh):
        for j in range(kw):
            maxpool.tap(dx, i, j, out_hw, stride)[...] += np.where(
                maxpool.tap(c.x, i, j, out_hw, stride) == y, dy, 0)
    return {"x": dx}


# Four or five windows a side on 9 maps: no case is one window alone (where moving its one
# non-zero entry can look like a flip), and where windows overlap, shared maxima turn up in
# every row and column (otherwise the diagnosis reads "only some slices are wrong").
SEVERAL_WINDOWS = {"N": (3, 3), "C": (3, 3), "Ho": (4, 5), "Wo": (4, 5), "Rh": (1, 1), "Rw": (1, 1)}


# At most 2 * 2 * 9 * 9 = 324 entries, under fd_element_limit: per-element differences find
# every tied entry, so the subgradient test moves whole ties together.
FEW_MAPS = {"N": (2, 2), "C": (2, 2), "Ho": (3, 4), "Wo": (3, 4), "Rh": (1, 1), "Rw": (1, 1)}


def mistake(window, stride, name: str, text: str, kind: str, backward, **changes):
    fields = {"dims": SEVERAL_WINDOWS, **changes}
    return maxpool.make(window, stride, name=f"maxpool-mistake-{name}", backward=backward,
                        expect="reject", erratum=text, expect_kind=kind, **fields)


RECORDS = [
    mistake((3, 3), (1, 1), "overwrite", "(P5) dx[source] = dy instead of +=: overlapping "
            "windows that share a maximum keep one window's gradient", "entries", overwrite),
    mistake((2, 3), (2, 3), "decode-by-height", "(P4) the window column decoded as t % kh "
            "instead of t % kw in a 2 x 3 window", "permuted", decoded_by_height),
    mistake((3, 3), (2, 2), "every-tied-maximum", "(P3) the gradient sent to every tied "
            "maximum of a window (mask x == max) instead of to the first, as torch does",
            "subgradient", every_tied_maximum, samplers={"x": maxpool.quantized},
            kink_distance=None, dims=FEW_MAPS),
]
