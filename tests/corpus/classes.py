"""Class layers that keep their cache in ``self``: ``forward(x)``, ``backward(dout) -> dx``,
parameter gradients left in attributes (``self.dW``) or a ``grads`` dict, and one layer whose
backward also takes its SGD step."""

from __future__ import annotations

from functools import partial

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref


class Linear:
    """y = x W + b with W: (D, M), b: (M,)."""

    def __init__(self, D, M):
        self.W = np.random.randn(D, M) / np.sqrt(D)
        self.b = np.zeros(M)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class LinearBiasKeepdims(Linear):
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0, keepdims=True)
        return dout @ self.W.T


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class ReLUInPlace(ReLU):
    def backward(self, dout):
        dout[~self.mask] = 0
        return dout


class Sigmoid:
    def forward(self, x):
        self.x = x
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class SigmoidDerivativeOfInput(Sigmoid):
    def backward(self, dout):
        return dout * self.x * (1 - self.x)


class Conv2d:
    """Stride 1, no padding, parameters and gradients in dicts. x: (N, C, H, W),
    params["W"]: (F, C, K, K), params["b"]: (F,) -> (N, F, H - K + 1, W - K + 1)."""

    def __init__(self, C, F, K):
        self.params = {"W": np.random.randn(F, C, K, K) * 0.1, "b": np.zeros(F)}
        self.grads = {}

    def forward(self, x):
        W, b = self.params["W"], self.params["b"]
        K = W.shape[2]
        N, C, H, Wd = x.shape
        Ho, Wo = H - K + 1, Wd - K + 1
        cols = np.stack([x[:, :, i:i + Ho, j:j + Wo] for i in range(K) for j in range(K)],
                        axis=2)
        self.cache = (x, cols)
        out = np.einsum("nckhw,fck->nfhw", cols, W.reshape(W.shape[0], C, K * K))
        return out + b[None, :, None, None]

    def backward(self, dout):
        x, cols = self.cache
        W = self.params["W"]
        F, C, K, _ = W.shape
        Ho, Wo = dout.shape[2], dout.shape[3]
        self.grads["W"] = np.einsum("nckhw,nfhw->fck", cols, dout).reshape(W.shape)
        self.grads["b"] = dout.sum(axis=(0, 2, 3))
        dcols = np.einsum("fck,nfhw->nckhw", W.reshape(F, C, K * K), dout)
        dx = np.zeros_like(x)
        for i in range(K):
            for j in range(K):
                dx[:, :, i:i + Ho, j:j + Wo] += dcols[:, :, i * K + j]
        return dx


class Conv2dBiasPerPosition(Conv2d):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = dout.sum(axis=0)
        return dx


class MaxPool2x2:
    """Non-overlapping 2 x 2 max-pool through a reshape; ties share the gradient equally (a
    subgradient), as the fast course implementation does. x: (N, C, 2 Ho, 2 Wo)."""

    def forward(self, x):
        N, C, H, W = x.shape
        blocks = x.reshape(N, C, H // 2, 2, W // 2, 2)
        out = blocks.max(axis=(3, 5))
        self.cache = (blocks, out)
        return out

    def backward(self, dout):
        blocks, out = self.cache
        mask = blocks == out[:, :, :, None, :, None]
        dblocks = mask * dout[:, :, :, None, :, None]
        dblocks /= mask.sum(axis=(3, 5), keepdims=True)
        return dblocks.reshape(blocks.shape[0], blocks.shape[1], -1, blocks.shape[4] * 2)


class MaxPool2x2EveryTie(MaxPool2x2):
    def backward(self, dout):
        blocks, out = self.cache
        mask = blocks == out[:, :, :, None, :, None]
        dblocks = mask * dout[:, :, :, None, :, None]
        return dblocks.reshape(blocks.shape[0], blocks.shape[1], -1, blocks.shape[4] * 2)


class SGDLinear(Linear):
    """A Linear layer whose backward also steps: W -= lr dW, after dx is computed."""

    def __init__(self, D, M, lr=1e-2):
        super().__init__(D, M)
        self.lr = lr

    def backward(self, dout):
        dx = super().backward(dout)
        self.W -= self.lr * self.dW
        self.b -= self.lr * self.db
        return dx


class SGDLinearAscent(SGDLinear):
    def backward(self, dout):
        dx = Linear.backward(self, dout)
        self.W += self.lr * self.dW
        self.b += self.lr * self.db
        return dx


def _linear_reference(x, W, b):
    return x @ W + b


LINEAR = {"shapes": "x: N D", "params": {"W": "D M", "b": "M"},
          "dims": {"N": (2, 4), "D": (2, 5), "M": (3, 5)}, "fan_in": {"W": "D"},
          "reference": _linear_reference}
ELEMENTWISE = {"shapes": "x: N D", "dims": {"N": (4, 6), "D": (5, 8)}}
def _conv_reference(x, W, b):
    return ref.conv(x, W, b, stride=1, pad=0)


CONV = {"shapes": "x: N C Hin Win", "params": "W: F C K K, b: F", "param_slot": "params[{name}]",
        "grads": "grads[{name}]", "fan_in": {"W": "C * K * K"},
        "dims": {"N": (1, 2), "C": (1, 3), "F": (1, 3), "K": (1, 3), "Ho": (1, 3), "Wo": (2, 3),
                 "Hin": "Ho + K - 1", "Win": "Wo + K - 1"},
        "reference": _conv_reference}
POOL = {"shapes": "x: N C H W", "reference": partial(ref.max_pool, size=2, stride=2),
        "dims": {"N": (1, 2), "C": (1, 2), "Ho": (1, 3), "Wo": (2, 3), "H": "2 * Ho",
                 "W": "2 * Wo"}}

RIGHT = [
    adapt.layer("linear-class", Linear, **LINEAR, complex_step=True),
    adapt.layer("relu-class", ReLU, **ELEMENTWISE, reference=ref.relu),
    adapt.layer("sigmoid-class", Sigmoid, **ELEMENTWISE, reference=ref.sigmoid,
                complex_step=True),
    adapt.layer("conv-class", Conv2d, **CONV),
    adapt.layer("max-pool-class", MaxPool2x2, **POOL),
    adapt.layer("max-pool-class-ties", MaxPool2x2, **POOL, samplers={"x": adapt.quantized(2)}),
    adapt.layer("sgd-linear-class", SGDLinear, **LINEAR, lr="lr"),
]

WRONG = [
    adapt.layer("linear-class-db-keepdims", LinearBiasKeepdims, **LINEAR, expect="reject",
                erratum="self.db = dout.sum(axis=0, keepdims=True): shape (1, M)",
                expect_kind="wrong-shape"),
    adapt.layer("relu-class-writes-dout", ReLUInPlace, **ELEMENTWISE, reference=ref.relu,
                expect="reject", erratum="dout[~mask] = 0; return dout: the upstream gradient "
                "is zeroed in place", expect_kind="mutated-upstream"),
    adapt.layer("sigmoid-class-derivative-of-input", SigmoidDerivativeOfInput, **ELEMENTWISE,
                reference=ref.sigmoid, expect="reject", erratum="x (1 - x) with the cached "
                "input instead of the output", expect_kind="values"),
    adapt.layer("conv-class-bias-per-position", Conv2dBiasPerPosition, **CONV, expect="reject",
                erratum="grads['b'] summed over the batch only: one bias gradient per output "
                "position, shape (F, Ho, Wo)", expect_kind="wrong-shape"),
    adapt.layer("max-pool-class-every-tie", MaxPool2x2EveryTie, **POOL,
                samplers={"x": adapt.quantized(2)}, expect="reject",
                erratum="the mask of all tied maxima without dividing by their count: a window "
                "with k equal maxima passes on k times dout", expect_kind="subgradient"),
    adapt.layer("sgd-linear-class-ascent", SGDLinearAscent, **LINEAR, lr="lr",
                expect="reject", erratum="W += lr * dW: the step climbs the loss (invisible at "
                "learning rate 0; the step is the SGD step with its sign flipped)",
                expect_kind="sign"),
]
