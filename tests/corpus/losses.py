"""Loss-and-gradient-in-one-call functions: ``loss, dx = softmax_loss(x, y)``,
``loss, dW = softmax_loss_naive(W, X, y, reg)`` with loops, ``loss, grads =
two_layer_net(params, X, y, reg)``, a masked temporal loss, and a loss reading module globals."""

from __future__ import annotations

from functools import partial

import numpy as np

from handgrad import adapt
from tests.corpus import logistic_globals
from tests.corpus import reference as ref

REG = 0.05


def softmax_loss(x, y):
    """x: (N, C) scores, y: (N,) labels in [0, C); mean cross-entropy."""
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


def softmax_loss_no_mean(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return loss, dx


def svm_loss(x, y):
    """Multiclass hinge with margin 1, with loops. x: (N, C), y: (N,)."""
    N, C = x.shape
    loss = 0.0
    dx = np.zeros(x.shape)
    for i in range(N):
        for j in range(C):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y[i]] -= 1
    return loss / N, dx / N


def svm_loss_correct_class_forgotten(x, y):
    N, C = x.shape
    loss = 0.0
    dx = np.zeros(x.shape)
    for i in range(N):
        for j in range(C):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
    return loss / N, dx / N


def softmax_loss_naive(W, X, y, reg):
    """Softmax classifier with loops: W: (D, C), X: (N, D), y: (N,); loss + reg * |W|^2."""
    N, C = X.shape[0], W.shape[1]
    loss = 0.0
    dW = np.zeros(W.shape)
    for i in range(N):
        scores = X[i] @ W
        scores -= np.max(scores)
        probs = np.exp(scores) / np.sum(np.exp(scores))
        loss -= np.log(probs[y[i]])
        for j in range(C):
            dW[:, j] += (probs[j] - (j == y[i])) * X[i]
    loss = loss / N + reg * np.sum(W * W)
    dW = dW / N + 2 * reg * W
    return loss, dW


def softmax_loss_naive_reg_half(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    loss = 0.0
    dW = np.zeros(W.shape)
    for i in range(N):
        scores = X[i] @ W
        scores -= np.max(scores)
        probs = np.exp(scores) / np.sum(np.exp(scores))
        loss -= np.log(probs[y[i]])
        for j in range(C):
            dW[:, j] += (probs[j] - (j == y[i])) * X[i]
    loss = loss / N + reg * np.sum(W * W)
    dW = dW / N + reg * W
    return loss, dW


def softmax_loss_naive_first_class_skipped(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    loss = 0.0
    dW = np.zeros(W.shape)
    for i in range(N):
        scores = X[i] @ W
        scores -= np.max(scores)
        probs = np.exp(scores) / np.sum(np.exp(scores))
        loss -= np.log(probs[y[i]])
        for j in range(1, C):
            dW[:, j] += (probs[j] - (j == y[i])) * X[i]
    loss = loss / N + reg * np.sum(W * W)
    dW = dW / N + 2 * reg * W
    return loss, dW


def svm_loss_naive(W, X, y, reg):
    """Linear SVM with loops: W: (D, C), X: (N, D), y: (N,)."""
    N, C = X.shape[0], W.shape[1]
    loss = 0.0
    dW = np.zeros(W.shape)
    for i in range(N):
        scores = X[i].dot(W)
        for j in range(C):
            if j == y[i]:
                continue
            margin = scores[j] - scores[y[i]] + 1
            if margin > 0:
                loss += margin
                dW[:, j] += X[i]
                dW[:, y[i]] -= X[i]
    loss = loss / N + reg * np.sum(W * W)
    dW = dW / N + 2 * reg * W
    return loss, dW


def svm_loss_naive_not_averaged(W, X, y, reg):
    N, C = X.shape[0], W.shape[1]
    loss = 0.0
    dW = np.zeros(W.shape)
    for i in range(N):
        scores = X[i].dot(W)
        for j in range(C):
            if j == y[i]:
                continue
            margin = scores[j] - scores[y[i]] + 1
            if margin > 0:
                loss += margin
                dW[:, j] += X[i]
                dW[:, y[i]] -= X[i]
    loss = loss / N + reg * np.sum(W * W)
    dW = dW + 2 * reg * W
    return loss, dW


def two_layer_net(params, X, y, reg):
    """affine - relu - affine - softmax. params: W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    data_loss, dscores = softmax_loss(scores, y)
    loss = data_loss + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    grads = {}
    grads["W2"] = hidden.T @ dscores + reg * W2
    grads["b2"] = np.sum(dscores, axis=0)
    dhidden = dscores @ W2.T
    dhidden[hidden <= 0] = 0
    grads["W1"] = X.T @ dhidden + reg * W1
    grads["b1"] = np.sum(dhidden, axis=0)
    return loss, grads


def two_layer_net_b1_keepdims(params, X, y, reg):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    data_loss, dscores = softmax_loss(scores, y)
    loss = data_loss + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    grads = {}
    grads["W2"] = hidden.T @ dscores + reg * W2
    grads["b2"] = np.sum(dscores, axis=0)
    dhidden = dscores @ W2.T
    dhidden[hidden <= 0] = 0
    grads["W1"] = X.T @ dhidden + reg * W1
    grads["b1"] = np.sum(dhidden, axis=0, keepdims=True)
    return loss, grads


def temporal_softmax_loss(x, y, mask):
    """x: (N, T, V) scores, y: (N, T) words, mask: (N, T) bool; summed over the kept steps,
    averaged over N."""
    N, T, V = x.shape
    flat_x, flat_y, flat_mask = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    probs = np.exp(flat_x - np.max(flat_x, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(flat_mask * np.log(probs[np.arange(N * T), flat_y])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), flat_y] -= 1
    dx_flat /= N
    dx_flat *= flat_mask[:, None]
    return loss, dx_flat.reshape(N, T, V)


def temporal_softmax_loss_mask_forgotten(x, y, mask):
    N, T, V = x.shape
    flat_x, flat_y, flat_mask = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    probs = np.exp(flat_x - np.max(flat_x, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(flat_mask * np.log(probs[np.arange(N * T), flat_y])) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), flat_y] -= 1
    dx_flat /= N
    return loss, dx_flat.reshape(N, T, V)


def mse_loss(pred, target):
    """Mean squared error over every entry; the gradient for pred only."""
    diff = pred - target
    loss = np.mean(diff ** 2)
    dpred = 2 * diff / diff.size
    return loss, dpred


def mse_loss_without_two(pred, target):
    diff = pred - target
    loss = np.mean(diff ** 2)
    dpred = diff / diff.size
    return loss, dpred


SCORES = {"shapes": "x: N C, y: N", "labels": {"y": "C"}, "dims": {"N": (2, 5), "C": (3, 6)}}
CLASSIFIER = {"shapes": "W: D C, X: N D, y: N", "labels": {"y": "C"}, "nondiff": {"X"},
              "dims": {"N": (2, 4), "D": (2, 4), "C": (3, 5)}, "args": (REG,),
              "fan_in": {"W": "D"}}
TWO_LAYER = {"shapes": "X: N D, y: N", "params": "W1: D H, b1: H, W2: H C, b2: C",
             "labels": {"y": "C"}, "nondiff": {"X"}, "args": (REG,),
             "dims": {"N": (2, 4), "D": (2, 4), "H": (3, 5), "C": (2, 4)},
             "fan_in": {"W1": "D", "W2": "H"}, "reference": partial(ref.two_layer_net, reg=REG)}
TEMPORAL = {"shapes": "x: N T V, y: N T, mask: N T", "labels": {"y": "V"},
            "nondiff": {"mask"}, "samplers": {"mask": adapt.bernoulli(0.6)},
            "dims": {"N": (2, 3), "T": (2, 4), "V": (2, 5)},
            "reference": ref.temporal_softmax_loss}
MSE = {"shapes": "pred: N D, target: N D", "nondiff": {"target"},
       "dims": {"N": (1, 4), "D": (1, 5)}, "reference": ref.mse}
LOGISTIC = {"shapes": "X: N D, y: N", "params": "W: D, b: ()", "globals_of": logistic_globals,
            "labels": {"y": 2}, "nondiff": {"X"}, "dims": {"N": (2, 5), "D": (1, 4)},
            "reference": ref.logistic}

RIGHT = [
    adapt.loss("softmax-loss", softmax_loss, **SCORES, reference=ref.softmax_loss),
    adapt.loss("svm-loss-loops", svm_loss, **SCORES, reference=ref.svm_loss),
    adapt.loss("softmax-classifier-naive", softmax_loss_naive, **CLASSIFIER,
               reference=partial(ref.softmax_classifier, reg=REG)),
    adapt.loss("svm-classifier-naive", svm_loss_naive, **CLASSIFIER,
               reference=partial(ref.svm_classifier, reg=REG)),
    adapt.loss("two-layer-net", two_layer_net, **TWO_LAYER),
    adapt.loss("temporal-softmax-loss", temporal_softmax_loss, **TEMPORAL),
    adapt.loss("mse-loss", mse_loss, **MSE, complex_step=True),
    adapt.loss("logistic-globals", logistic_globals.loss, **LOGISTIC, complex_step=True),
]

WRONG = [
    adapt.loss("softmax-loss-no-mean", softmax_loss_no_mean, **SCORES,
               reference=ref.softmax_loss, expect="reject", erratum="the loss is averaged over "
               "the batch but dx is not divided by N", expect_kind="factor"),
    adapt.loss("svm-loss-correct-class-forgotten", svm_loss_correct_class_forgotten, **SCORES,
               reference=ref.svm_loss, expect="reject", erratum="each active margin pushes "
               "x[i, j] up but never pulls the correct class x[i, y_i] down",
               expect_kind="zero-entries"),
    adapt.loss("softmax-classifier-naive-reg-half", softmax_loss_naive_reg_half, **CLASSIFIER,
               reference=partial(ref.softmax_classifier, reg=REG), expect="reject",
               erratum="reg * W for the gradient of reg * |W|^2 (the 2 is lost)",
               expect_kind="values"),
    adapt.loss("softmax-classifier-naive-first-class-skipped",
               softmax_loss_naive_first_class_skipped, **CLASSIFIER,
               reference=partial(ref.softmax_classifier, reg=REG), expect="reject",
               erratum="for j in range(1, C): the gradient loop starts one class late",
               expect_kind="slices"),
    adapt.loss("svm-classifier-naive-not-averaged", svm_loss_naive_not_averaged, **CLASSIFIER,
               reference=partial(ref.svm_classifier, reg=REG), expect="reject",
               erratum="the loss is divided by N, the data part of dW is not",
               expect_kind="values"),
    adapt.loss("two-layer-net-b1-keepdims", two_layer_net_b1_keepdims, **TWO_LAYER,
               expect="reject", erratum="grads['b1'] summed with keepdims=True: shape (1, H)",
               expect_kind="wrong-shape"),
    adapt.loss("temporal-softmax-loss-mask-forgotten", temporal_softmax_loss_mask_forgotten,
               **TEMPORAL, expect="reject", erratum="the mask is applied to the loss but not "
               "to dx: padded steps get a gradient", expect_kind="nonzero-where-zero"),
    adapt.loss("mse-loss-without-two", mse_loss_without_two, **MSE, expect="reject",
               erratum="d/dpred of mean((pred - target)^2) written without the 2",
               expect_kind="factor"),
    adapt.loss("logistic-globals-sign-flipped", logistic_globals.loss_sign_flipped, **LOGISTIC,
               expect="reject", erratum="y - p, the gradient of the log-likelihood, for the "
               "loss that is its negative", expect_kind="sign"),
]
