"""Recurrent code written from scratch in the styles it takes outside the course conventions:
a cell with examples as columns, its parameters in one dict, a forward returning a prediction
besides the state (``a_next, yt_pred, cache``) and a backward returning its gradients in a dict
keyed ``dxt``, ``dWax``, ...; a step whose backward returns the parameters' gradients first;
and a cell class stepped through time by a loop the user writes, accumulating its parameter
gradients over the steps."""

from __future__ import annotations

import numpy as np

from handgrad import adapt
from tests.corpus import reference_scratch as ref
from tests.corpus.recurrent import rnn_step_forward


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def rnn_cell_forward(xt, a_prev, parameters):
    """xt: (n_x, m), a_prev: (n_a, m); parameters Wax: (n_a, n_x), Waa: (n_a, n_a),
    Wya: (n_y, n_a), ba: (n_a, 1), by: (n_y, 1)."""
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    Wya = parameters["Wya"]
    ba = parameters["ba"]
    by = parameters["by"]
    a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    yt_pred = softmax(np.dot(Wya, a_next) + by)
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_cell_backward(da_next, cache):
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next
    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)
    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)
    dba = np.sum(dtanh, axis=1, keepdims=True)
    gradients = {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients


def rnn_cell_backward_dba_over_features(da_next, cache):
    (a_next, a_prev, xt, parameters) = cache
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    dtanh = (1 - a_next ** 2) * da_next
    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)
    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)
    dba = np.sum(dtanh, axis=0, keepdims=True)
    gradients = {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients


def rnn_step_backward_params_first(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dWx, dWh, db, da @ Wx.T, da @ Wh.T


def rnn_step_backward_params_first_dWh_raw(dnext_h, cache):
    """dWh from the upstream gradient before the tanh derivative."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    dWx = x.T @ da
    dWh = prev_h.T @ dnext_h
    db = da.sum(axis=0)
    return dWx, dWh, db, da @ Wx.T, da @ Wh.T


class RNNCell:
    """One step h = tanh(x Wx + h_prev Wh + b); the caller loops over time. x: (N, D),
    h_prev: (N, H). Gradients are accumulated over the steps of backward."""

    def __init__(self, D, H):
        self.Wx = np.random.randn(D, H) * 0.01
        self.Wh = np.random.randn(H, H) * 0.01
        self.b = np.zeros(H)
        self.dWx = np.zeros((D, H))
        self.dWh = np.zeros((H, H))
        self.db = np.zeros(H)
        self.caches = []

    def forward(self, x, h_prev):
        h = np.tanh(x @ self.Wx + h_prev @ self.Wh + self.b)
        self.caches.append((x, h_prev, h))
        return h

    def backward(self, dh):
        x, h_prev, h = self.caches.pop()
        da = dh * (1 - h ** 2)
        self.dWx += x.T @ da
        self.dWh += h_prev.T @ da
        self.db += da.sum(axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


class RNNCellOverwrites(RNNCell):
    """Keeps the last step's parameter gradients (= instead of +=): only step 0's survive."""

    def backward(self, dh):
        x, h_prev, h = self.caches.pop()
        da = dh * (1 - h ** 2)
        self.dWx = x.T @ da
        self.dWh = h_prev.T @ da
        self.db = da.sum(axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


class RNNCellFirstCache(RNNCell):
    """Takes the caches from the front: backward at step t reads the forward of step T-1-t."""

    def backward(self, dh):
        x, h_prev, h = self.caches.pop(0)
        da = dh * (1 - h ** 2)
        self.dWx += x.T @ da
        self.dWh += h_prev.T @ da
        self.db += da.sum(axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


CELL = {"shapes": "xt: n_x m, a_prev: n_a m",
        "params": "Wax: n_a n_x, Waa: n_a n_a, Wya: n_y n_a, ba: n_a 1, by: n_y 1",
        "nondiff": {"Wya", "by"}, "outputs": "a_next: n_a m",
        "returns": "a_next, yt_pred, cache", "grad_keys": "d{name}",
        "fan_in": {"Wax": "n_x", "Waa": "n_a"},
        "dims": {"n_x": (2, 4), "m": (2, 4), "n_a": (3, 5), "n_y": (2, 3)},
        "reference": ref.rnn_cell_columns}
STEP = {"shapes": "x: N D, prev_h: N H, Wx: D H, Wh: H H, b: H",
        "grad_keys": ("Wx", "Wh", "b", "x", "prev_h"), "fan_in": {"Wx": "D", "Wh": "H"},
        "dims": {"N": (2, 4), "D": (2, 5), "H": (3, 5)}, "reference": ref.rnn_step}
LOOP = {"shapes": "x: T N D, h0: N H", "params": "Wx: D H, Wh: H H, b: H",
        "outputs": "h: T N H", "time": "T", "carry": {"h0": "h"}, "writes": ("caches",),
        "fan_in": {"Wx": "D", "Wh": "H"},
        "dims": {"T": (2, 4), "N": (1, 3), "D": (2, 4), "H": (2, 4)},
        "reference": ref.rnn_unrolled}

RIGHT = [
    adapt.pair("scratch-rnn-cell-columns", rnn_cell_forward, rnn_cell_backward, **CELL),
    adapt.pair("scratch-rnn-step-params-first", rnn_step_forward,
               rnn_step_backward_params_first, **STEP),
    adapt.layer("scratch-rnn-cell-loop", RNNCell, **LOOP),
]

WRONG = [
    adapt.pair("scratch-rnn-cell-columns-dba-over-features", rnn_cell_forward,
               rnn_cell_backward_dba_over_features, **CELL, expect="reject",
               erratum="dba = np.sum(dtanh, axis=0, keepdims=True): summed over the hidden "
               "units instead of the examples, shape (1, m)", expect_kind="wrong-shape"),
    adapt.pair("scratch-rnn-step-params-first-dWh-raw", rnn_step_forward,
               rnn_step_backward_params_first_dWh_raw, **STEP, expect="reject",
               erratum="dWh = prev_h.T @ dnext_h: the tanh derivative is left out",
               expect_kind="values"),
    adapt.layer("scratch-rnn-cell-loop-overwrites", RNNCellOverwrites, **LOOP,
                expect="reject", erratum="self.dWx = ... instead of +=: each step's "
                "gradients replace the later steps' (exact at T = 1)", expect_kind="values"),
    adapt.layer("scratch-rnn-cell-loop-first-cache", RNNCellFirstCache, **LOOP,
                expect="reject", erratum="self.caches.pop(0): backward pairs step t with the "
                "forward of step T-1-t (exact at T = 1)", expect_kind="values"),
]
