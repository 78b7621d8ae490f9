"""Elementwise layers in the ``out, cache = f_forward(x)`` / ``dx = f_backward(dout, cache)``
style of course assignments, each with mistakes people really make in them."""

from __future__ import annotations

from functools import partial

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref

# 20 to 48 entries: every mistake below touches several of them in the minimal case.
DIMS = {"N": (4, 6), "D": (5, 8)}
# A sign flipped at the negative entries is diagnosed "values" only when no row or column
# happens to hold positive entries alone (else "only slices ... are wrong"): wider for abs.
WIDE = {"N": (7, 9), "D": (8, 10)}
SHAPES = "x: N D"
LEAK = 0.1
LOW, HIGH = -0.3, 0.3


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def relu_backward_open_mask(dout, cache):
    """Right too: at x == 0 it passes the gradient on (1 lies between the one-sided
    derivatives 0 and 1), where torch gives 0."""
    x = cache
    dx = dout * (x >= 0)
    return dx


def relu_backward_mask_from_dout(dout, cache):
    x = cache  # noqa: F841 - the mistake: the mask below should use it
    dx = dout.copy()
    dx[dout <= 0] = 0
    return dx


def relu_backward_into_dout(dout, cache):
    x = cache
    dout[x <= 0] = 0
    return dout


def relu_backward_into_cache(dout, cache):
    x = cache
    x[x > 0] = 1
    x[x <= 0] = 0
    return dout * x


def leaky_relu_forward(x, alpha=0.01):
    out = np.where(x > 0, x, alpha * x)
    cache = (x, alpha)
    return out, cache


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    dx = dout.copy()
    dx[x <= 0] *= alpha
    return dx


def leaky_relu_backward_no_leak(dout, cache):
    x, alpha = cache
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    cache = out
    return out, cache


def sigmoid_backward(dout, cache):
    out = cache
    dx = dout * out * (1 - out)
    return dx


def sigmoid_backward_of_output(dout, cache):
    out = cache
    s = 1 / (1 + np.exp(-out))
    dx = dout * s * (1 - s)
    return dx


def sigmoid_backward_in_place(dout, cache):
    out = cache
    out *= 1 - out
    dx = dout * out
    return dx


def tanh_forward(x):
    out = np.tanh(x)
    cache = (x, out)
    return out, cache


def tanh_backward(dout, cache):
    x, out = cache
    dx = dout * (1 - out ** 2)
    return dx


def tanh_backward_of_input(dout, cache):
    x, out = cache
    dx = dout * (1 - x ** 2)
    return dx


def abs_forward(x):
    out = np.abs(x)
    cache = (x, out)
    return out, cache


def abs_backward(dout, cache):
    x, out = cache
    dx = dout * np.sign(x)
    return dx


def abs_backward_sign_of_output(dout, cache):
    x, out = cache
    dx = dout * np.sign(out)
    return dx


def clip_forward(x, low, high):
    out = np.clip(x, low, high)
    cache = (x, low, high)
    return out, cache


def clip_backward(dout, cache):
    x, low, high = cache
    dx = dout * ((x >= low) & (x <= high))
    return dx


def clip_backward_upper_forgotten(dout, cache):
    x, low, high = cache
    dx = dout.copy()
    dx[x < low] = 0
    return dx


def _elementwise(name, forward, backward, reference, **fields):
    return adapt.pair(name, forward, backward, shapes=SHAPES, dims=DIMS, reference=reference,
                      **fields)


QUANTIZED = {"x": adapt.quantized(4)}
LEAKY = {"kwargs": {"alpha": LEAK}, "reference": partial(ref.leaky_relu, slope=LEAK)}
CLIPPED = {"args": (LOW, HIGH), "reference": partial(ref.clip, low=LOW, high=HIGH)}

RIGHT = [
    _elementwise("relu", relu_forward, relu_backward, ref.relu),
    _elementwise("relu-quantized", relu_forward, relu_backward, ref.relu, samplers=QUANTIZED),
    _elementwise("relu-open-mask-quantized", relu_forward, relu_backward_open_mask, ref.relu,
                 samplers=QUANTIZED),
    adapt.pair("leaky-relu", leaky_relu_forward, leaky_relu_backward, shapes=SHAPES, dims=DIMS,
               **LEAKY),
    _elementwise("sigmoid", sigmoid_forward, sigmoid_backward, ref.sigmoid, complex_step=True),
    _elementwise("tanh", tanh_forward, tanh_backward, ref.tanh, complex_step=True),
    adapt.pair("abs", abs_forward, abs_backward, shapes=SHAPES, dims=WIDE, reference=ref.absolute),
    adapt.pair("clip", clip_forward, clip_backward, shapes=SHAPES, dims=DIMS, **CLIPPED),
    adapt.pair("clip-quantized", clip_forward, clip_backward, shapes=SHAPES, dims=DIMS,
               samplers={"x": adapt.quantized(10)}, **CLIPPED),
]

WRONG = [
    _elementwise("relu-mask-from-dout", relu_forward, relu_backward_mask_from_dout, ref.relu,
                 expect="reject", erratum="the mask is built from the upstream gradient dout "
                 "instead of the input x", expect_kind="mask"),
    _elementwise("relu-writes-dout", relu_forward, relu_backward_into_dout, ref.relu,
                 expect="reject", erratum="zeroes dout in place and returns it (dout[x <= 0] "
                 "= 0): the caller's upstream gradient is destroyed",
                 expect_kind="mutated-upstream"),
    _elementwise("relu-writes-cached-input", relu_forward, relu_backward_into_cache, ref.relu,
                 expect="reject", erratum="turns the cached input into the mask in place "
                 "(x[x > 0] = 1): the caller's x is overwritten", expect_kind="mutated-input"),
    adapt.pair("leaky-relu-no-leak", leaky_relu_forward, leaky_relu_backward_no_leak,
               shapes=SHAPES, dims=DIMS, **LEAKY, expect="reject", erratum="relu's backward "
               "reused: the slope alpha of the negative side is dropped",
               expect_kind="zero-entries"),
    _elementwise("sigmoid-derivative-of-output", sigmoid_forward, sigmoid_backward_of_output,
                 ref.sigmoid, expect="reject", erratum="sigma'(x) evaluated at the cached output "
                 "(sigma(out)(1 - sigma(out))) instead of out (1 - out)", expect_kind="values"),
    _elementwise("sigmoid-overwrites-cache", sigmoid_forward, sigmoid_backward_in_place,
                 ref.sigmoid, expect="reject", erratum="out *= 1 - out on the cached output: "
                 "right once, wrong on a second backward from the same cache",
                 expect_kind="mutated-cache"),
    _elementwise("tanh-derivative-of-input", tanh_forward, tanh_backward_of_input, ref.tanh,
                 expect="reject", erratum="1 - x^2 with the input instead of 1 - tanh(x)^2",
                 expect_kind="values"),
    adapt.pair("abs-sign-of-output", abs_forward, abs_backward_sign_of_output, shapes=SHAPES,
               dims=WIDE, reference=ref.absolute, expect="reject",
               erratum="sign taken of the output |x| (always +1) instead of the input",
               expect_kind="values"),
    adapt.pair("clip-upper-forgotten", clip_forward, clip_backward_upper_forgotten,
               shapes=SHAPES, dims=DIMS, **CLIPPED, expect="reject",
               erratum="only the lower bound blocks the gradient",
               expect_kind="nonzero-where-zero"),
]
