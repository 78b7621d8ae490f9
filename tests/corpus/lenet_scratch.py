"""Layers of a LeNet written from scratch, in the styles such code takes: an activation whose
forward returns no cache and whose backward takes the input (``sigmoid_backward(dA, Z)``); NHWC
convolution with
``foward_prop`` (sic) and ``back_prop(dZ, lr)`` stepping inside backward, a (1, 1, 1, F) bias;
a fully connected layer creating its weights on its first forward, handing its gradients to
``self.update(dW, db)``, which steps with the module's ``LEARNING_RATE``; and a softmax loss
layer whose labels are set through a method, whose forward returns ``(loss, accuracy)`` and
whose ``backward()`` takes no upstream gradient."""

from __future__ import annotations

import sys

import numpy as np
import torch

from handgrad import adapt
from tests.corpus import reference_scratch as ref

LEARNING_RATE = 0.01


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def sigmoid_backward(dA, Z):
    s = sigmoid(Z)
    return dA * s * (1 - s)


def sigmoid_backward_as_of_output(dA, Z):
    """s (1 - s) written for the output, applied to the input it is given."""
    return dA * Z * (1 - Z)


class Conv:
    """Valid convolution, stride 1. X: (N, H, W, C), W: (K, K, C, F), b: (1, 1, 1, F)."""

    def __init__(self, C, F, K):
        self.W = np.random.randn(K, K, C, F) * 0.1
        self.b = np.zeros((1, 1, 1, F))

    def foward_prop(self, X):
        self.X = X
        N, H, Wd, C = X.shape
        K, F = self.W.shape[0], self.W.shape[3]
        Z = np.zeros((N, H - K + 1, Wd - K + 1, F))
        for i in range(H - K + 1):
            for j in range(Wd - K + 1):
                patch = X[:, i:i + K, j:j + K, :]
                Z[:, i, j, :] = np.tensordot(patch, self.W, axes=([1, 2, 3], [0, 1, 2]))
        return Z + self.b

    def back_prop(self, dZ, lr):
        X = self.X
        K = self.W.shape[0]
        _, Ho, Wo, _ = dZ.shape
        dX = np.zeros(X.shape)
        dW = np.zeros(self.W.shape)
        for i in range(Ho):
            for j in range(Wo):
                patch = X[:, i:i + K, j:j + K, :]
                dW += np.tensordot(patch, dZ[:, i, j, :], axes=([0], [0]))
                dX[:, i:i + K, j:j + K, :] += np.tensordot(dZ[:, i, j, :], self.W,
                                                           axes=([1], [3]))
        db = dZ.sum(axis=(0, 1, 2), keepdims=True)
        self.dW, self.db = dW, db
        self.W -= lr * dW
        self.b -= lr * db
        return dX


class ConvStepUphill(Conv):
    def back_prop(self, dZ, lr):
        dX = Conv.back_prop(self, dZ, 0.0)
        self.W += lr * self.dW
        self.b += lr * self.db
        return dX


class ConvKernelFlipped(Conv):
    """dX through the kernel rotated by 180 degrees: the full convolution's habit, applied
    where the forward already is a cross-correlation."""

    def back_prop(self, dZ, lr):
        X = self.X
        K = self.W.shape[0]
        _, Ho, Wo, _ = dZ.shape
        dX = np.zeros(X.shape)
        dW = np.zeros(self.W.shape)
        flipped = self.W[::-1, ::-1]
        for i in range(Ho):
            for j in range(Wo):
                patch = X[:, i:i + K, j:j + K, :]
                dW += np.tensordot(patch, dZ[:, i, j, :], axes=([0], [0]))
                dX[:, i:i + K, j:j + K, :] += np.tensordot(dZ[:, i, j, :], flipped,
                                                           axes=([1], [3]))
        db = dZ.sum(axis=(0, 1, 2), keepdims=True)
        self.dW, self.db = dW, db
        self.W -= lr * dW
        self.b -= lr * db
        return dX


class FC:
    """X: (N, D) -> X W + b; W: (D, M) and b: (M,) are made on the first forward."""

    def __init__(self, M):
        self.M = M
        self.initialised = False

    def forward(self, X):
        if not self.initialised:
            D = X.shape[1]
            self.W = np.random.randn(D, self.M) * np.sqrt(2 / D)
            self.b = np.zeros(self.M)
            self.initialised = True
        self.X = X
        return X @ self.W + self.b

    def backward(self, dZ):
        dW = self.X.T @ dZ
        db = dZ.sum(axis=0)
        dX = dZ @ self.W.T
        self.update(dW, db)
        return dX

    def update(self, dW, db):
        self.W -= LEARNING_RATE * dW
        self.b -= LEARNING_RATE * db


class FCAveragedTwice(FC):
    """Divides by the batch size, which the loss layer above already did."""

    def backward(self, dZ):
        m = dZ.shape[0]
        dW = self.X.T @ dZ / m
        db = dZ.sum(axis=0) / m
        dX = dZ @ self.W.T
        self.update(dW, db)
        return dX


class SoftmaxCrossEntropy:
    def set_labels(self, y):
        self.y = y

    def forward(self, scores):
        shifted = scores - scores.max(axis=1, keepdims=True)
        self.probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        N = scores.shape[0]
        loss = -np.log(self.probs[np.arange(N), self.y]).mean()
        accuracy = (self.probs.argmax(axis=1) == self.y).mean()
        return loss, accuracy

    def backward(self):
        N = self.probs.shape[0]
        dscores = self.probs.copy()
        dscores[np.arange(N), self.y] -= 1
        return dscores / N


class SoftmaxCrossEntropyNotAveraged(SoftmaxCrossEntropy):
    def backward(self):
        N = self.probs.shape[0]
        dscores = self.probs.copy()
        dscores[np.arange(N), self.y] -= 1
        return dscores


CONV = {"shapes": "x: N Hin Win C", "params": "W: K K C F, b: 1 1 1 F",
        "outputs": "out: N Ho Wo F",
        "reference_shapes": "x: N C Hin Win, W: F C K K, b: F, out: N F Ho Wo",
        "methods": "foward_prop, back_prop", "backward_args": (adapt.LR,),
        "fan_in": {"W": "C * K * K"},
        "dims": {"N": (1, 2), "C": (1, 2), "F": (1, 3), "K": (2, 3), "Ho": (1, 3), "Wo": (2, 3),
                 "Hin": "Ho + K - 1", "Win": "Wo + K - 1"},
        "reference": ref.conv_valid}
FULLY_CONNECTED = {"shapes": "X: N D", "params": "W: D M, b: M", "lazy": True,
                   "grads": adapt.passed_to("update"),
                   "globals": (sys.modules[__name__], {"LEARNING_RATE": adapt.LR}),
                   "fan_in": {"W": "D"}, "dims": {"N": (2, 4), "D": (2, 5), "M": (3, 5)},
                   "reference": ref.dense}
LOSS_LAYER = {"shapes": "scores: N C, y: N", "labels": {"y": "C"},
              "methods": {"y": "set_labels"}, "outputs": "loss: ()", "returns": "loss, accuracy",
              "upstream": False, "dims": {"N": (2, 5), "C": (3, 6)},
              "reference": ref.softmax_cross_entropy}

SIGMOID = {"shapes": "Z: N D", "returns": "out", "backward_args": (adapt.input("Z"),),
           "dims": {"N": (2, 4), "D": (3, 6)}, "reference": torch.sigmoid}

RIGHT = [
    adapt.pair("scratch-lenet-sigmoid", sigmoid, sigmoid_backward, **SIGMOID, complex_step=True),
    adapt.layer("scratch-lenet-conv", Conv, **CONV),
    adapt.layer("scratch-lenet-fc", FC, **FULLY_CONNECTED),
    adapt.layer("scratch-lenet-softmax-loss", SoftmaxCrossEntropy, **LOSS_LAYER),
]

WRONG = [
    adapt.pair("scratch-lenet-sigmoid-as-of-output", sigmoid, sigmoid_backward_as_of_output,
               **SIGMOID, expect="reject", erratum="Z (1 - Z): the derivative in terms of the "
               "output, given the input", expect_kind="values"),
    adapt.layer("scratch-lenet-conv-step-uphill", ConvStepUphill, **CONV, expect="reject",
                erratum="self.W += lr * dW: back_prop climbs the loss (invisible at learning "
                "rate 0; the step is SGD's with its sign flipped)", expect_kind="sign"),
    adapt.layer("scratch-lenet-conv-kernel-flipped", ConvKernelFlipped, **CONV,
                expect="reject", erratum="dX through the kernel rotated by 180 degrees, for a "
                "forward that does not rotate it (dX shows no simple pattern)",
                expect_kind="values"),
    adapt.layer("scratch-lenet-fc-averaged-twice", FCAveragedTwice, **FULLY_CONNECTED,
                expect="reject", erratum="dW and db divided by the batch size a second time "
                "(the loss layer already averages)", expect_kind="factor"),
    adapt.layer("scratch-lenet-softmax-loss-not-averaged", SoftmaxCrossEntropyNotAveraged,
                **LOSS_LAYER, expect="reject", erratum="the loss is the batch mean, dscores is "
                "not divided by N", expect_kind="factor"),
]
