"""Code in the styles of small from-scratch libraries that needs the adapters' further options
at once: a recurrent cell that makes its weights on its first step and counts its steps (``lazy``
with ``time``), layers whose constructors draw their initial weights from ``np.random`` with a
dropout mask drawn in forward, and a dense layer whose own optimizer step returns float64
weights for float32 ones. Each right, and with a real mistake."""

from __future__ import annotations

import numpy as np
import torch

from handgrad import adapt


class StatefulCell:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b). The cell keeps its own hidden state: the initial
    state is read at the first step only (``self.t == 0``); the weights are made on that first
    step from the input's width. x_t: (N, D), h: (N, H)."""

    def __init__(self, H):
        self.H = H
        self.t = 0
        self.caches = []
        self.Wx = None

    def forward(self, x, h0):
        if self.Wx is None:
            D = x.shape[1]
            self.Wx = np.random.randn(D, self.H) / np.sqrt(D)
            self.Wh = np.random.randn(self.H, self.H) / np.sqrt(self.H)
            self.b = np.zeros(self.H)
            self.dWx, self.dWh, self.db = (np.zeros_like(self.Wx), np.zeros_like(self.Wh),
                                           np.zeros_like(self.b))
        h_prev = h0 if self.t == 0 else self.h
        self.h = np.tanh(x @ self.Wx + h_prev @ self.Wh + self.b)
        self.caches.append((x, h_prev, self.h))
        self.t += 1
        return self.h

    def backward(self, dh):
        x, h_prev, h = self.caches.pop()
        self.t -= 1
        da = dh * (1 - h ** 2)
        self.dWx += x.T @ da
        self.dWh += h_prev.T @ da
        self.db += da.sum(axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


class StatefulCellStaleState(StatefulCell):
    """dWh from the step's output instead of the state it read (h for h_prev)."""

    def backward(self, dh):
        x, h_prev, h = self.caches.pop()
        self.t -= 1
        da = dh * (1 - h ** 2)
        self.dWx += x.T @ da
        self.dWh += h.T @ da
        self.db += da.sum(axis=0)
        return da @ self.Wx.T, da @ self.Wh.T


def torch_rnn(x, h0, Wx, Wh, b):
    h, hs = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ Wx + h @ Wh + b)
        hs.append(h)
    return torch.stack(hs)


class DropoutDense:
    """out = ((x W + b) * mask) / keep, mask ~ Bernoulli(keep) drawn from np.random in forward;
    the constructor draws the initial weights from np.random too, as most libraries do."""

    def __init__(self, D, M, keep=0.7):
        self.W = np.random.randn(D, M) * np.sqrt(2.0 / D)
        self.b = np.zeros(M)
        self.keep = keep

    def forward(self, x):
        self.x = x
        z = x @ self.W + self.b
        self.mask = (np.random.rand(*z.shape) < self.keep) / self.keep
        return z * self.mask

    def backward(self, dout):
        dz = dout * self.mask
        self.dW = self.x.T @ dz
        self.db = dz.sum(axis=0)
        return dz @ self.W.T


class DropoutDenseUnscaled(DropoutDense):
    """Backward applies the 0/1 mask without the 1/keep of the forward."""

    def backward(self, dout):
        dz = dout * (self.mask > 0)
        self.dW = self.x.T @ dz
        self.db = dz.sum(axis=0)
        return dz @ self.W.T


def torch_dropout_dense(x, W, b, keep=0.7):
    z = x @ W + b
    mask = torch.from_numpy(np.random.rand(*z.shape) < keep).to(z.dtype) / keep
    return z * mask


DROPOUT = {"shapes": "x: N D", "params": "W: D M, b: M", "fan_in": {"W": "D"},
           "dims": {"N": (2, 5), "D": (2, 5), "M": (2, 4)}, "reference": torch_dropout_dense}

class Momentum:
    """v = mu v + g; w - lr v. The buffer is made with np.zeros (float64), so a float32 weight
    comes back float64 from its first step, whatever the rate."""

    def __init__(self, mu=0.9):
        self.mu = mu
        self.v = None

    def update(self, w, grad, lr):
        if self.v is None:
            self.v = np.zeros(np.shape(w))
        self.v = self.mu * self.v + grad
        return w - lr * self.v


class MomentumDense:
    """x W + b; backward steps both parameters with the layer's own Momentum optimizers."""

    def __init__(self, D, M, lr=0.01):
        self.W = np.random.randn(D, M) / np.sqrt(D)
        self.b = np.zeros(M)
        self.lr = lr
        self.W_opt, self.b_opt = Momentum(), Momentum()

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        W = self.W
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        self.W = self.W_opt.update(self.W, self.dW, self.lr)
        self.b = self.b_opt.update(self.b, self.db, self.lr)
        return dout @ W.T


class MomentumDenseMeanBias(MomentumDense):
    """The bias gradient as a mean over the batch where the forward sums."""

    def backward(self, dout):
        W = self.W
        self.dW = self.x.T @ dout
        self.db = dout.mean(axis=0)
        self.W = self.W_opt.update(self.W, self.dW, self.lr)
        self.b = self.b_opt.update(self.b, self.db, self.lr)
        return dout @ W.T


MOMENTUM = {"shapes": "x: N D", "params": "W: D M, b: M", "lr": "lr", "fan_in": {"W": "D"},
            "dims": {"N": (2, 5), "D": (2, 5), "M": (2, 4)},
            "reference": lambda x, W, b: x @ W + b}

CELL = {"shapes": "x: T N D, h0: N H", "params": "Wx: D H, Wh: H H, b: H",
        "outputs": "h: T N H", "time": "T", "carry": {"h0": "h"}, "lazy": True,
        "writes": ("caches", "t"), "fan_in": {"Wx": "D", "Wh": "H"},
        "dims": {"T": (1, 4), "N": (1, 3), "D": (2, 4), "H": (2, 4)}, "reference": torch_rnn}

RIGHT = [adapt.layer("options-lazy-counting-cell", StatefulCell, **CELL),
         adapt.layer("options-dropout-dense", DropoutDense, **DROPOUT)]
# Its own momentum step, not SGD: the descent check does not apply. No writes= on purpose: the
# momentum buffers and the float64 weights its step returns are what the contract must name.
NO_DESCENT = {"descent": "the layer steps with momentum, not plain SGD"}
RIGHT.append(adapt.layer("options-momentum-dense", MomentumDense, **MOMENTUM, skip=NO_DESCENT))
WRONG = [adapt.layer("options-lazy-counting-cell-dwh-from-h", StatefulCellStaleState, **CELL,
                     expect="reject", expect_kind="values",
                     erratum="dWh from the step's output h instead of the state h_prev it read"),
         adapt.layer("options-dropout-dense-unscaled", DropoutDenseUnscaled, **DROPOUT,
                     expect="reject", expect_kind="factor",
                     erratum="the backward's mask lacks the forward's 1/keep"),
         adapt.layer("options-momentum-dense-mean-bias", MomentumDenseMeanBias, **MOMENTUM,
                     skip=NO_DESCENT, expect="reject", expect_kind="factor",
                     erratum="db = dout.mean(axis=0) for a bias the forward adds to every row")]
