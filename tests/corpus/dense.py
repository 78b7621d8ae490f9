"""Affine, normalisation, embedding and temporal layers in the ``(out, cache)`` style, with
keepdims, parameter dicts and fancy indexing as course code writes them."""

from __future__ import annotations

from functools import partial

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref

EPS = 1e-5


def affine_forward(x, w, b):
    """x: (N, d1, ..., dk), w: (D, M) with D = d1 * ... * dk, b: (M,) -> out: (N, M)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_keepdims(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0, keepdims=True)
    return dx, dw, db


def affine_backward_dw_transposed(dout, cache):
    x, w, b = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = dout.T @ x.reshape(x.shape[0], -1)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def batchnorm_forward(x, gamma, beta, bn_param):
    """Training mode, step by step; running averages kept in bn_param as course code does.
    x: (N, D), gamma, beta: (D,)."""
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    N, D = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(D, dtype=x.dtype))
    mu = x.sum(axis=0) / N
    xmu = x - mu
    var = (xmu ** 2).sum(axis=0) / N
    std = np.sqrt(var + eps)
    xhat = xmu / std
    out = gamma * xhat + beta
    bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
    bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
    cache = (xhat, xmu, std, gamma)
    return out, cache


def batchnorm_backward(dout, cache):
    """Back through the graph of the forward, one node per line."""
    xhat, xmu, std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dstd = -(dxhat * xmu).sum(axis=0) / std ** 2
    dvar = dstd / (2 * std)
    dxmu = dxhat / std + dvar * 2 * xmu / N
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_backward_var_without_1_over_n(dout, cache):
    xhat, xmu, std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dstd = -(dxhat * xmu).sum(axis=0) / std ** 2
    dvar = dstd / (2 * std)
    dxmu = dxhat / std + dvar * 2 * xmu
    dmu = -dxmu.sum(axis=0)
    dx = dxmu + dmu / N
    return dx, dgamma, dbeta


def batchnorm_backward_dgamma_not_summed(dout, cache):
    xhat, xmu, std, gamma = cache
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = dout * xhat
    dxhat = dout * gamma
    dx = (N * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (N * std)
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, ln_param):
    """Normalises each row over its D features. x: (N, D), gamma, beta: (D,)."""
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + eps)
    out = gamma * xhat + beta
    cache = (xhat, np.sqrt(var + eps), gamma)
    return out, cache


def layernorm_backward(dout, cache):
    xhat, std, gamma = cache
    D = dout.shape[1]
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (D * dxhat - dxhat.sum(axis=1, keepdims=True)
          - xhat * (dxhat * xhat).sum(axis=1, keepdims=True)) / (D * std)
    return dx, dgamma, dbeta


def layernorm_backward_batch_axis(dout, cache):
    """The batchnorm backward pasted in: sums over the batch axis instead of the features."""
    xhat, std, gamma = cache
    N = dout.shape[0]
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    dx = (N * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (N * std)
    return dx, dgamma, dbeta


def temporal_affine_forward(x, w, b):
    """x: (N, T, D), w: (D, M), b: (M,) -> out: (N, T, M)."""
    N, T, D = x.shape
    M = b.shape[0]
    out = (x.reshape(N * T, D) @ w).reshape(N, T, M) + b
    cache = (x, w, b, out)
    return out, cache


def temporal_affine_backward(dout, cache):
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = (dout.reshape(N * T, M) @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


def temporal_affine_backward_db_per_step(dout, cache):
    x, w, b, out = cache
    N, T, D = x.shape
    M = b.shape[0]
    dx = (dout.reshape(N * T, M) @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
    db = dout.sum(axis=0)
    return dx, dw, db


def word_embedding_forward(x, W):
    """x: (N, T) integer word indices in [0, V); W: (V, D) -> out: (N, T, D)."""
    out = W[x]
    cache = (x, W)
    return out, cache


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def word_embedding_backward_fancy_add(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    dW[x] += dout
    return dW


AFFINE = {"shapes": "x: N A B, w: D M, b: M",
          "dims": {"N": (2, 4), "A": (1, 3), "B": (2, 3), "M": (3, 5), "D": "A * B"},
          "reference": ref.affine, "fan_in": {"w": "D"}}
# N >= 3: with two rows the normalised values are +-1 whatever x is, and dx is ~eps.
NORM = {"shapes": "x: N D, gamma: D, beta: D", "dims": {"N": (3, 6), "D": (2, 5)}}
BATCHNORM = {**NORM, "kwargs": {"bn_param": {"mode": "train", "eps": EPS}},
             "reference": partial(ref.batchnorm, eps=EPS)}
LAYERNORM = {"shapes": "x: N D, gamma: D, beta: D", "dims": {"N": (2, 5), "D": (3, 6)},
             "kwargs": {"ln_param": {"eps": EPS}}, "reference": partial(ref.layernorm, eps=EPS)}
TEMPORAL = {"shapes": "x: N T D, w: D M, b: M",
            "dims": {"N": (2, 3), "T": (2, 4), "D": (2, 4), "M": (3, 5)},
            "reference": ref.temporal_affine, "fan_in": {"w": "D"}}
# V < N * T: some word occurs twice in every case, so accumulation over repeats is exercised.
EMBEDDING = {"shapes": "x: N T, W: V D", "dims": {"N": (2, 3), "T": (3, 4), "V": (4, 5),
                                                  "D": (2, 4)},
             "labels": {"x": "V"}, "reference": ref.embedding}

RIGHT = [
    adapt.pair("affine", affine_forward, affine_backward, **AFFINE, complex_step=True),
    adapt.pair("batchnorm", batchnorm_forward, batchnorm_backward, **BATCHNORM),
    adapt.pair("layernorm", layernorm_forward, layernorm_backward, **LAYERNORM),
    adapt.pair("temporal-affine", temporal_affine_forward, temporal_affine_backward, **TEMPORAL),
    adapt.pair("word-embedding", word_embedding_forward, word_embedding_backward, **EMBEDDING),
]

WRONG = [
    adapt.pair("affine-db-keepdims", affine_forward, affine_backward_keepdims, **AFFINE,
               expect="reject", erratum="db = np.sum(dout, axis=0, keepdims=True): shape (1, M) "
               "for a bias of shape (M,)", expect_kind="wrong-shape"),
    adapt.pair("affine-dw-transposed", affine_forward, affine_backward_dw_transposed, **AFFINE,
               expect="reject", erratum="dw = dout.T @ x: (M, D), the transpose of w's shape",
               expect_kind="wrong-shape"),
    adapt.pair("batchnorm-var-path-without-1-over-n", batchnorm_forward,
               batchnorm_backward_var_without_1_over_n, **BATCHNORM, expect="reject",
               erratum="dvar * 2 (x - mu) without the 1/N of the variance's mean",
               expect_kind="values"),
    adapt.pair("batchnorm-dgamma-not-summed", batchnorm_forward,
               batchnorm_backward_dgamma_not_summed, **BATCHNORM, expect="reject",
               erratum="dgamma = dout * xhat: the reduction over the batch is forgotten",
               expect_kind="wrong-shape"),
    adapt.pair("layernorm-batch-axis", layernorm_forward, layernorm_backward_batch_axis,
               **LAYERNORM, expect="reject", erratum="batchnorm's dx pasted in: sums over the "
               "batch axis 0 instead of the features", expect_kind="values"),
    adapt.pair("temporal-affine-db-per-step", temporal_affine_forward,
               temporal_affine_backward_db_per_step, **TEMPORAL, expect="reject",
               erratum="db = dout.sum(axis=0): the sum over time is forgotten, shape (T, M)",
               expect_kind="wrong-shape"),
    adapt.pair("word-embedding-fancy-add", word_embedding_forward,
               word_embedding_backward_fancy_add, **EMBEDDING, expect="reject",
               erratum="dW[x] += dout: buffered fancy indexing keeps one of the repeated words' "
               "gradients instead of their sum (np.add.at accumulates): the rows of repeated "
               "words are wrong", expect_kind="slices"),
]
