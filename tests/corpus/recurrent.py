"""Recurrent steps in the course style: an RNN step, an LSTM step with two outputs
(``next_h, next_c, cache``), and a whole RNN over a time-major sequence checked against a
batch-first reference."""

from __future__ import annotations

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,) -> next_h: (N, H)."""
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_step_backward_tanh_of_prev_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - prev_h ** 2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_step_backward_dWh_transposed(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = da.T @ prev_h
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """x: (N, D), prev_h, prev_c: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,).
    Returns next_h, next_c: (N, H) and the cache. Gates in the order i, f, o, g."""
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    do = dnext_h * tanh_c
    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_step_backward_cell_path_dropped(dnext_h, dnext_c, cache):
    """Treats next_c as internal: its upstream gradient dnext_c never enters."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tanh_c = np.tanh(next_c)
    do = dnext_h * tanh_c
    dc = dnext_h * o * (1 - tanh_c ** 2)
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    dprev_c = dc * f
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)])
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def rnn_forward_time_major(x, h0, Wx, Wh, b):
    """A whole sequence, time major: x: (T, N, D), h0: (N, H) -> h: (T, N, H)."""
    T, N, _ = x.shape
    h = np.zeros((T, N, h0.shape[1]), dtype=x.dtype)
    prev_h = h0
    caches = []
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[t], prev_h, Wx, Wh, b)
        h[t] = prev_h
        caches.append(cache)
    return h, caches


def rnn_backward_time_major(dh, caches):
    T = dh.shape[0]
    dx = np.zeros((T, *caches[0][0].shape), dtype=dh.dtype)
    dprev_h = np.zeros_like(dh[0])
    dWx, dWh, db = 0, 0, 0
    for t in reversed(range(T)):
        dx[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[t] + dprev_h, caches[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db


def rnn_backward_time_major_no_carry(dh, caches):
    """Each step gets only its own dh[t]: the gradient through the hidden state is dropped."""
    T = dh.shape[0]
    dx = np.zeros((T, *caches[0][0].shape), dtype=dh.dtype)
    dWx, dWh, db = 0, 0, 0
    for t in reversed(range(T)):
        dx[t], dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[t], caches[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return dx, dprev_h, dWx, dWh, db


STEP = {"shapes": "x: N D, prev_h: N H, Wx: D H, Wh: H H, b: H",
        "dims": {"N": (2, 4), "D": (2, 5), "H": (3, 5)}, "reference": ref.rnn_step,
        "fan_in": {"Wx": "D", "Wh": "H"}, "outputs": "next_h: N H"}
LSTM = {"shapes": "x: N D, prev_h: N H, prev_c: N H, Wx: D G, Wh: H G, b: G",
        "dims": {"N": (2, 3), "D": (2, 4), "H": (2, 4), "G": "4 * H"},
        "outputs": "next_h: N H, next_c: N H", "reference": ref.lstm_step,
        "fan_in": {"Wx": "D", "Wh": "H"}}
SEQUENCE = {"shapes": "x: T N D, h0: N H, Wx: D H, Wh: H H, b: H",
            "dims": {"T": (2, 4), "N": (1, 3), "D": (2, 4), "H": (2, 4)},
            "outputs": "h: T N H", "reference_shapes": "x: N T D, h: N T H",
            "reference": ref.rnn_batch_first, "fan_in": {"Wx": "D", "Wh": "H"}}

RIGHT = [
    adapt.pair("rnn-step", rnn_step_forward, rnn_step_backward, **STEP, complex_step=True),
    adapt.pair("lstm-step", lstm_step_forward, lstm_step_backward, **LSTM, complex_step=True),
    adapt.pair("rnn-time-major", rnn_forward_time_major, rnn_backward_time_major, **SEQUENCE),
]

WRONG = [
    adapt.pair("rnn-step-tanh-of-prev-h", rnn_step_forward, rnn_step_backward_tanh_of_prev_h,
               **STEP, expect="reject", erratum="tanh' taken at the previous state: "
               "1 - prev_h^2 instead of 1 - next_h^2", expect_kind="values"),
    adapt.pair("rnn-step-dWh-transposed", rnn_step_forward, rnn_step_backward_dWh_transposed,
               **STEP, expect="reject", erratum="dWh = da.T @ prev_h: square, so the shape "
               "hides the transpose", expect_kind="transposed"),
    adapt.pair("lstm-step-cell-path-dropped", lstm_step_forward,
               lstm_step_backward_cell_path_dropped, **LSTM, expect="reject",
               erratum="dc = dnext_h o (1 - tanh^2 c) without + dnext_c: the second output's "
               "gradient never enters", expect_kind="values"),
    adapt.pair("rnn-time-major-no-carry", rnn_forward_time_major,
               rnn_backward_time_major_no_carry, **SEQUENCE, expect="reject",
               erratum="dh[t] alone enters step t: dprev_h from step t + 1 is not added",
               expect_kind="slices"),
]
