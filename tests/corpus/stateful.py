"""Layers that keep bookkeeping in backward by design, as from-scratch libraries write them: a
recurrent layer that steps a time counter back through its cached states, one that sums its
weight gradients into accumulators over the time steps, a dense layer whose backward steps its
optimizer's momentum buffer; and one whose backward corrupts its cache (``x *= mask``)."""

from __future__ import annotations

import numpy as np

from handgrad import adapt
from tests.corpus import reference as ref


class CountingRNN:
    """h_t = tanh(x_t Wx + h_{t-1} Wh), h_0 = 0; x: (N, T, D) -> hs: (N, T, H). Backward walks
    ``self.t`` down from T to 0, one time step at a time."""

    def __init__(self, D, H):
        self.Wx = np.random.randn(D, H) * 0.1
        self.Wh = np.random.randn(H, H) * 0.1

    def forward(self, x):
        N, T, _ = x.shape
        self.x = x
        self.hs = [np.zeros((N, self.Wh.shape[0]), dtype=x.dtype)]
        self.t = 0
        for _ in range(T):
            self.hs.append(np.tanh(x[:, self.t] @ self.Wx + self.hs[-1] @ self.Wh))
            self.t += 1
        return np.stack(self.hs[1:], axis=1)

    def backward(self, dhs):
        self.dWx = np.zeros_like(self.Wx)
        self.dWh = np.zeros_like(self.Wh)
        dx = np.zeros_like(self.x)
        dh_next = np.zeros_like(self.hs[0])
        while self.t > 0:
            dz = (dhs[:, self.t - 1] + dh_next) * (1 - self.hs[self.t] ** 2)
            self.dWx += self.x[:, self.t - 1].T @ dz
            self.dWh += self.hs[self.t - 1].T @ dz
            dx[:, self.t - 1] = dz @ self.Wx.T
            dh_next = dz @ self.Wh.T
            self.t -= 1
        return dx


class AccumulatingRNN(CountingRNN):
    """The same cell; backward sums into ``self.acc`` (allocated in forward, as the library
    does) and hands out copies: a second backward on the same cache would add on top."""

    def forward(self, x):
        self.acc = {"Wx": np.zeros_like(self.Wx), "Wh": np.zeros_like(self.Wh)}
        return super().forward(x)

    def backward(self, dhs):
        T = dhs.shape[1]
        dx = np.zeros_like(self.x)
        dh_next = np.zeros_like(self.hs[0])
        for t in reversed(range(T)):
            dz = (dhs[:, t] + dh_next) * (1 - self.hs[t + 1] ** 2)
            self.acc["Wx"] += self.x[:, t].T @ dz
            self.acc["Wh"] += self.hs[t].T @ dz
            dx[:, t] = dz @ self.Wx.T
            dh_next = dz @ self.Wh.T
        self.dWx, self.dWh = self.acc["Wx"].copy(), self.acc["Wh"].copy()
        return dx


class MomentumDense:
    """y = x W; backward also steps the momentum buffer of its optimizer (the step itself is
    applied by ``update()``, which the engine never calls)."""

    def __init__(self, D, M, beta=0.9):
        self.W = np.random.randn(D, M) / np.sqrt(D)
        self.beta = beta

    def forward(self, x):
        self.x = x
        self.velocity = np.zeros_like(self.W)
        return x @ self.W

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.velocity = self.beta * self.velocity + self.dW
        self.velocity_norm = float(np.linalg.norm(self.velocity))
        return dout @ self.W.T


class InvertedDropout:
    """y = x * mask / keep with a fixed 0/1 mask; backward halves its cached scale in place after
    using it (meant for a second, half-weighted pass), so a second backward on the same cache
    returns half the gradient."""

    def __init__(self, keep=0.7):
        self.keep = keep

    def forward(self, x, mask):
        self.scale = mask / self.keep
        return x * self.scale

    def backward(self, dout):
        dx = dout * self.scale
        self.scale *= 0.5
        return dx


def _rnn_reference(x, Wx, Wh):
    return ref.rnn_tanh_sequence(x, Wx, Wh)


RNN = {"shapes": "x: N T D", "params": "Wx: D H, Wh: H H",
       "dims": {"N": (2, 3), "T": (1, 4), "D": (2, 4), "H": (2, 5)}, "reference": _rnn_reference}

RIGHT = [
    adapt.layer("rnn-step-counter", CountingRNN, **RNN, writes=("t",)),
    adapt.layer("rnn-accumulators", AccumulatingRNN, **RNN, writes=("acc",)),
    adapt.layer("dense-momentum-in-backward", MomentumDense, shapes="x: N D", params="W: D M",
                dims={"N": (2, 4), "D": (2, 5), "M": (2, 4)},
                reference=lambda x, W: x @ W),
]

WRONG = [
    adapt.layer("dropout-scale-halved-in-place", InvertedDropout,
                shapes="x: N D, mask: N D", nondiff={"mask"}, dims={"N": (2, 4), "D": (2, 5)},
                samplers={"mask": lambda rng, shape, dims: (rng.uniform(size=shape) < 0.7) * 1.0},
                reference=lambda x, mask: x * mask / 0.7, expect="reject",
                erratum="self.scale *= 0.5 after dx: the cached scale is halved in place, so a "
                "second backward on the same cache returns half the gradient",
                expect_kind="mutated-cache"),
]
