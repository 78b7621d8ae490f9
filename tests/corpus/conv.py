"""Naive convolution and pooling with explicit loops, ``conv_param``/``pool_param`` dicts and
float64 accumulators (``np.zeros(shape)``), as course assignments write them; one NHWC
convolution checked against an NCHW reference."""

from __future__ import annotations

from functools import partial

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref


def conv_forward_naive(x, w, b, conv_param):
    """x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out: (N, F, Ho, Wo)."""
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho = 1 + (H + 2 * pad - HH) // stride
    Wo = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = dout.shape
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(b.shape)
    for n in range(N):
        for f in range(F):
            db[f] += dout[n, f].sum()
            for i in range(Ho):
                for j in range(Wo):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, db


def conv_backward_naive_padded_dx(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = dout.shape
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(b.shape)
    for n in range(N):
        for f in range(F):
            db[f] += dout[n, f].sum()
            for i in range(Ho):
                for j in range(Wo):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dx[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    return dx, dw, db


def conv_backward_naive_last_row_skipped(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = dout.shape
    _, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    db = np.zeros(b.shape)
    for n in range(N):
        for f in range(F):
            db[f] += dout[n, f].sum()
            for i in range(Ho - 1):
                for j in range(Wo):
                    hs, ws = i * stride, j * stride
                    dw[f] += x_pad[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]
                    dx_pad[n, :, hs:hs + HH, ws:ws + WW] += w[f] * dout[n, f, i, j]
    dx = dx_pad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, db


def max_pool_forward_naive(x, pool_param):
    """x: (N, C, H, W) -> out: (N, C, Ho, Wo), windows pool_height x pool_width."""
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho = 1 + (H - ph) // stride
    Wo = 1 + (W - pw) // stride
    out = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    out[n, c, i, j] = np.max(window)
    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    """The whole gradient to the first maximum of each window in row-major order (argmax),
    which is where torch sends it when a window holds equal maxima."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + a, j * stride + b] += dout[n, c, i, j]
    return dx


def max_pool_backward_naive_assign(dout, cache):
    """``dx[...] = dout`` instead of ``+=``: right only when no two windows share an input."""
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + a, j * stride + b] = dout[n, c, i, j]
    return dx


def max_pool_backward_naive_every_tie(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    mask = window == np.max(window)
                    dx[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw] += \
                        mask * dout[n, c, i, j]
    return dx


def avg_pool_forward_naive(x, pool_param):
    """Non-overlapping P x P mean pooling. x: (N, C, H, W) -> out: (N, C, H // P, W // P)."""
    P = pool_param["size"]
    N, C, H, W = x.shape
    out = np.zeros((N, C, H // P, W // P))
    for i in range(H // P):
        for j in range(W // P):
            out[:, :, i, j] = x[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P].mean(axis=(2, 3))
    cache = (x.shape, P)
    return out, cache


def avg_pool_backward_naive(dout, cache):
    shape, P = cache
    dx = np.zeros(shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P] = dout[:, :, i:i + 1, j:j + 1] / (P * P)
    return dx


def avg_pool_backward_naive_no_area(dout, cache):
    shape, P = cache
    dx = np.zeros(shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * P:(i + 1) * P, j * P:(j + 1) * P] = dout[:, :, i:i + 1, j:j + 1]
    return dx


def conv_forward_nhwc(x, w, b, pad):
    """Channels last: x: (N, H, W, C), w: (K, K, C, F), b: (F,) -> out: (N, Ho, Wo, F), stride 1.
    One matrix product per kernel offset (i, j)."""
    K = w.shape[0]
    x_pad = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    Ho, Wo = x_pad.shape[1] - K + 1, x_pad.shape[2] - K + 1
    out = np.zeros((x.shape[0], Ho, Wo, w.shape[3]), dtype=x.dtype) + b
    for i in range(K):
        for j in range(K):
            out += x_pad[:, i:i + Ho, j:j + Wo, :] @ w[i, j]
    cache = (x_pad, w, pad)
    return out, cache


def conv_backward_nhwc(dout, cache):
    x_pad, w, pad = cache
    K = w.shape[0]
    Ho, Wo = dout.shape[1], dout.shape[2]
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i in range(K):
        for j in range(K):
            dx_pad[:, i:i + Ho, j:j + Wo, :] += dout @ w[i, j].T
            dw[i, j] = np.einsum("nhwc,nhwf->cf", x_pad[:, i:i + Ho, j:j + Wo, :], dout)
    db = dout.sum(axis=(0, 1, 2))
    H, W = x_pad.shape[1] - 2 * pad, x_pad.shape[2] - 2 * pad
    return dx_pad[:, pad:pad + H, pad:pad + W, :], dw, db


def conv_backward_nhwc_kernel_indices_swapped(dout, cache):
    x_pad, w, pad = cache
    K = w.shape[0]
    Ho, Wo = dout.shape[1], dout.shape[2]
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i in range(K):
        for j in range(K):
            dx_pad[:, i:i + Ho, j:j + Wo, :] += dout @ w[j, i].T
            dw[i, j] = np.einsum("nhwc,nhwf->cf", x_pad[:, i:i + Ho, j:j + Wo, :], dout)
    db = dout.sum(axis=(0, 1, 2))
    H, W = x_pad.shape[1] - 2 * pad, x_pad.shape[2] - 2 * pad
    return dx_pad[:, pad:pad + H, pad:pad + W, :], dw, db


CONV_PARAM = {"stride": 2, "pad": 1}
CONV = {"shapes": "x: N C H W, w: F C HH WW, b: F",
        "dims": {"N": (1, 2), "C": (1, 3), "H": (3, 5), "W": (3, 6), "F": (1, 3), "HH": (2, 3),
                 "WW": (1, 3)},
        "args": (CONV_PARAM,), "reference": partial(ref.conv, **CONV_PARAM),
        "outputs": "out: N F Ho Wo", "fan_in": {"w": "C * HH * WW"}}
CONV["dims"].update({"Ho": "(H + 2 - HH) // 2 + 1", "Wo": "(W + 2 - WW) // 2 + 1"})


def _pool(size: int, stride: int, quantize: bool, outputs: tuple[int, int]) -> dict:
    """A max-pool record's fields; H = (Ho - 1) stride + size, so every window fits."""
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    return {"shapes": "x: N C H W",
            "dims": {"N": (1, 2), "C": (1, 2), "Ho": outputs, "Wo": outputs,
                     "H": f"(Ho - 1) * {stride} + {size}", "W": f"(Wo - 1) * {stride} + {size}"},
            "args": (param,), "reference": partial(ref.max_pool, size=size, stride=stride),
            "samplers": {"x": adapt.quantized(2)} if quantize else {}}


# 3 x 3 windows at stride 1 overlap; at least 3 x 3 of them, so that several inputs are the
# maximum of more than one window in the minimal case.
POOL2, POOL3 = _pool(2, 2, False, (1, 3)), _pool(3, 1, False, (3, 4))
POOL2_TIES, POOL3_TIES = _pool(2, 2, True, (1, 3)), _pool(3, 1, True, (3, 4))
AVG_POOL = {"shapes": "x: N C H W", "args": ({"size": 2},), "reference": partial(ref.avg_pool,
                                                                                    size=2),
            "dims": {"N": (1, 3), "C": (1, 3), "Ho": (1, 3), "Wo": (2, 4), "P": 2,
                     "H": "P * Ho", "W": "P * Wo"}}
NHWC = {"shapes": "x: N H W C, w: K K C F, b: F", "kwargs": {"pad": 1},
        "dims": {"N": (1, 2), "H": (2, 5), "W": (3, 5), "C": (1, 3), "F": (1, 3), "K": (2, 3),
                 "Ho": "H + 2 - K + 1", "Wo": "W + 2 - K + 1"},
        "outputs": "out: N Ho Wo F", "fan_in": {"w": "K * K * C"},
        "reference_shapes": "x: N C H W, w: F C K K, out: N F Ho Wo",
        "reference": partial(ref.conv, stride=1, pad=1)}

RIGHT = [
    adapt.pair("conv-naive", conv_forward_naive, conv_backward_naive, **CONV),
    adapt.pair("max-pool-2x2", max_pool_forward_naive, max_pool_backward_naive, **POOL2),
    adapt.pair("max-pool-3x3-stride-1", max_pool_forward_naive, max_pool_backward_naive,
               **POOL3),
    adapt.pair("max-pool-2x2-ties", max_pool_forward_naive, max_pool_backward_naive,
               **POOL2_TIES),
    adapt.pair("max-pool-3x3-stride-1-ties", max_pool_forward_naive, max_pool_backward_naive,
               **POOL3_TIES),
    adapt.pair("max-pool-2x2-assign", max_pool_forward_naive, max_pool_backward_naive_assign,
               **POOL2),
    adapt.pair("avg-pool", avg_pool_forward_naive, avg_pool_backward_naive, **AVG_POOL),
    adapt.pair("conv-nhwc", conv_forward_nhwc, conv_backward_nhwc, **NHWC, complex_step=True),
]

WRONG = [
    adapt.pair("conv-naive-padded-dx", conv_forward_naive, conv_backward_naive_padded_dx,
               **CONV, expect="reject", erratum="returns the gradient of the padded input; "
               "the pad border is not cut off", expect_kind="wrong-shape"),
    adapt.pair("conv-naive-last-row-skipped", conv_forward_naive,
               conv_backward_naive_last_row_skipped, **CONV, expect="reject",
               erratum="for i in range(Ho - 1): the backward loop misses the last output row, "
               "so the inputs only it reads get no gradient and those it shares get part of "
               "theirs: the last input rows are wrong", expect_kind="slices"),
    adapt.pair("max-pool-3x3-stride-1-assign", max_pool_forward_naive,
               max_pool_backward_naive_assign, **POOL3, expect="reject",
               erratum="dx[...] = dout instead of +=: overlapping windows that share their "
               "maximum keep only the last window's gradient: those few inputs are wrong",
               expect_kind="entries"),
    adapt.pair("max-pool-2x2-every-tie", max_pool_forward_naive,
               max_pool_backward_naive_every_tie, **POOL2_TIES, expect="reject",
               erratum="mask = window == max: every tied maximum gets the whole gradient, so a "
               "window passes on k times dout", expect_kind="subgradient"),
    adapt.pair("avg-pool-no-area", avg_pool_forward_naive, avg_pool_backward_naive_no_area,
               **AVG_POOL, expect="reject", erratum="dout copied to the window without the "
               "1/P^2 of the mean", expect_kind="factor"),
    adapt.pair("conv-nhwc-kernel-indices-swapped", conv_forward_nhwc,
               conv_backward_nhwc_kernel_indices_swapped, **NHWC, expect="reject",
               erratum="w[j, i] for w[i, j] in dx: the kernel's rows and columns swapped",
               expect_kind="values"),
]
