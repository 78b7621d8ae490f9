"""Layers in the style of a from-scratch deep-learning library: ``forward_pass(X, training)``
and ``backward_pass(accum_grad)``, parameters created by ``initialize(optimizer)``, which also
gives each parameter a copy of the optimizer; backward never stores its gradients but hands
them to ``self.W_opt.update(self.W, grad_w)``; a bias kept as (1, M); losses as classes with
an elementwise ``loss(y, p)`` and its ``gradient(y, p)`` on one-hot labels; a layer that takes
a list of inputs."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from handgrad import adapt
from tests.corpus import reference_scratch as ref


class Layer:
    def set_input_shape(self, shape):
        self.input_shape = shape

    def layer_name(self):
        return self.__class__.__name__

    def parameters(self):
        return 0

    def forward_pass(self, X, training):
        raise NotImplementedError()

    def backward_pass(self, accum_grad):
        raise NotImplementedError()


class Dense(Layer):
    """A fully connected layer: X: (N, D) -> X W + w0, W: (D, n_units), w0: (1, n_units)."""

    def __init__(self, n_units, input_shape=None):
        self.layer_input = None
        self.input_shape = input_shape
        self.n_units = n_units
        self.trainable = True
        self.W = None
        self.w0 = None

    def initialize(self, optimizer):
        limit = 1 / math.sqrt(self.input_shape[0])
        self.W = np.random.uniform(-limit, limit, (self.input_shape[0], self.n_units))
        self.w0 = np.zeros((1, self.n_units))
        self.W_opt = copy.copy(optimizer)
        self.w0_opt = copy.copy(optimizer)

    def parameters(self):
        return np.prod(self.W.shape) + np.prod(self.w0.shape)

    def forward_pass(self, X, training=True):
        self.layer_input = X
        return X.dot(self.W) + self.w0

    def backward_pass(self, accum_grad):
        # The weights used in the forward pass, for the gradient of the input
        W = self.W
        if self.trainable:
            grad_w = self.layer_input.T.dot(accum_grad)
            grad_w0 = np.sum(accum_grad, axis=0, keepdims=True)
            self.W = self.W_opt.update(self.W, grad_w)
            self.w0 = self.w0_opt.update(self.w0, grad_w0)
        return accum_grad.dot(W.T)


class DenseBiasWithoutKeepdims(Dense):
    def backward_pass(self, accum_grad):
        W = self.W
        if self.trainable:
            grad_w = self.layer_input.T.dot(accum_grad)
            grad_w0 = np.sum(accum_grad, axis=0)
            self.W = self.W_opt.update(self.W, grad_w)
            self.w0 = self.w0_opt.update(self.w0, grad_w0)
        return accum_grad.dot(W.T)


class DenseStepDiscarded(Dense):
    """Calls the optimizer but drops what it returns: the optimizer steps out of place."""

    def backward_pass(self, accum_grad):
        W = self.W
        if self.trainable:
            grad_w = self.layer_input.T.dot(accum_grad)
            grad_w0 = np.sum(accum_grad, axis=0, keepdims=True)
            self.W_opt.update(self.W, grad_w)
            self.w0_opt.update(self.w0, grad_w0)
        return accum_grad.dot(W.T)


class TanH:
    def __call__(self, x):
        return 2 / (1 + np.exp(-2 * x)) - 1

    def gradient(self, x):
        return 1 - np.power(self.__call__(x), 2)


class TanHGradientOfInput(TanH):
    def gradient(self, x):
        return 1 - np.power(x, 2)


class Activation(Layer):
    def __init__(self, function):
        self.activation_func = function
        self.trainable = True

    def forward_pass(self, X, training=True):
        self.layer_input = X
        return self.activation_func(X)

    def backward_pass(self, accum_grad):
        return accum_grad * self.activation_func.gradient(self.layer_input)


class Concatenate(Layer):
    """Joins a list of inputs (N, D_i) along the features."""

    def forward_pass(self, inputs, training=True):
        self.widths = [x.shape[1] for x in inputs]
        return np.concatenate(inputs, axis=1)

    def backward_pass(self, accum_grad):
        return np.split(accum_grad, np.cumsum(self.widths)[:-1], axis=1)


class ConcatenateEqualParts(Concatenate):
    def backward_pass(self, accum_grad):
        return np.array_split(accum_grad, len(self.widths), axis=1)


class CrossEntropy:
    def loss(self, y, p):
        # Avoid division by zero
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return - y * np.log(p) - (1 - y) * np.log(1 - p)

    def gradient(self, y, p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return - (y / p) + (1 - y) / (1 - p)


class CrossEntropyGradientOfMean(CrossEntropy):
    """The gradient of the batch mean, for a loop that sums the losses of its samples."""

    def gradient(self, y, p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return (- (y / p) + (1 - y) / (1 - p)) / y.shape[0]


def _probabilities(rng, shape, dims):
    """Softmax-like outputs away from 0 and 1, where the loss and its clip are smooth."""
    return rng.uniform(0.05, 0.95, size=shape)


DENSE = {"shapes": "X: N D", "params": "W: D M, w0: 1 M", "reference_shapes": "w0: M",
         "methods": "forward_pass, backward_pass", "args": (True,),
         "optimizer": lambda layer, opt: layer.initialize(opt), "fan_in": {"W": "D"},
         "dims": {"N": (2, 4), "D": (2, 5), "M": (3, 5)}, "reference": ref.dense}
ACTIVATION = {"shapes": "X: N D", "methods": "forward_pass, backward_pass",
              "dims": {"N": (2, 4), "D": (3, 6)}, "reference": torch.tanh}
CONCATENATE = {"shapes": "a: N A, b: N B", "as_list": ("a", "b"),
               "methods": "forward_pass, backward_pass",
               "dims": {"N": (1, 3), "A": (1, 3), "B": (2, 4)},
               "reference": lambda a, b: torch.cat([a, b], dim=1)}
CROSS_ENTROPY = {"shapes": "y: N C, p: N C", "one_hot": ("y",), "reduce": "sum",
                 "samplers": {"p": _probabilities}, "dims": {"N": (2, 4), "C": (2, 5)},
                 "reference": ref.binary_cross_entropy}


def _dense(M, D):
    return Dense(M, input_shape=(D,))


def _dense_bias_without_keepdims(M, D):
    return DenseBiasWithoutKeepdims(M, input_shape=(D,))


def _dense_step_discarded(M, D):
    return DenseStepDiscarded(M, input_shape=(D,))


RIGHT = [
    adapt.layer("scratch-dense", _dense, **DENSE),
    adapt.layer("scratch-tanh", lambda: Activation(TanH()), **ACTIVATION),
    adapt.layer("scratch-concatenate", Concatenate, **CONCATENATE),
    adapt.loss("scratch-cross-entropy", CrossEntropy().loss, gradient=CrossEntropy().gradient,
               **CROSS_ENTROPY),
]

WRONG = [
    adapt.layer("scratch-dense-bias-without-keepdims", _dense_bias_without_keepdims, **DENSE,
                expect="reject", erratum="grad_w0 = np.sum(accum_grad, axis=0): shape (M,) "
                "for a bias kept as (1, M)", expect_kind="wrong-shape"),
    adapt.layer("scratch-dense-step-discarded", _dense_step_discarded, **DENSE,
                expect="reject", erratum="self.W_opt.update(self.W, grad_w) without assigning "
                "its result: the optimizer steps out of place, so the layer never moves "
                "(invisible at learning rate 0; the step is zero)", expect_kind="zero"),
    adapt.layer("scratch-tanh-gradient-of-input", lambda: Activation(TanHGradientOfInput()),
                **ACTIVATION, expect="reject", erratum="1 - x^2 at the input instead of "
                "1 - tanh(x)^2", expect_kind="values"),
    adapt.layer("scratch-concatenate-equal-parts", ConcatenateEqualParts, **CONCATENATE,
                expect="reject", erratum="np.array_split into equal parts: the gradients of "
                "inputs of different widths are cut at the wrong column",
                expect_kind="wrong-shape"),
    adapt.loss("scratch-cross-entropy-gradient-of-mean", CrossEntropy().loss,
               gradient=CrossEntropyGradientOfMean().gradient, **CROSS_ENTROPY,
               expect="reject", erratum="the gradient divided by the batch size while the "
               "training loop sums the elementwise losses", expect_kind="factor"),
]
