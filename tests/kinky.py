"""Small piecewise-linear layers, right as written, for the engine's trust tests: relu, leaky
relu, abs, clip, a multiclass hinge loss and max-pooling (any window and stride, ties broken as
torch breaks them). None declares its kinks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import handgrad


def relu(x):
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    return {"x": dout * (x > 0)}


def leaky(x):
    return np.where(x > 0, x, 0.1 * x), x


def leaky_backward(dout, x):
    return {"x": dout * np.where(x > 0, 1.0, 0.1).astype(x.dtype)}


def absolute(x):
    return np.abs(x), x


def absolute_backward(dout, x):
    return {"x": dout * np.sign(x)}


def clip(x):
    return np.clip(x, -0.5, 0.5), x


def clip_backward(dout, x):
    return {"x": dout * (np.abs(x) < 0.5)}


def hinge(x, y):
    """Multiclass SVM loss, summed over the batch: x (N, C) scores, y (N,) labels."""
    n = np.arange(len(y))
    margins = np.maximum(0, x - x[n, y][:, None] + 1.0)
    margins[n, y] = 0
    return margins.sum(), (x, y, margins)


def hinge_backward(dout, cache):
    x, y, margins = cache
    n = np.arange(len(y))
    active = (margins > 0).astype(x.dtype)
    active[n, y] = -active.sum(axis=1)
    return {"x": dout * active}


def hinge_reference(x, y):
    n = torch.arange(len(y))
    margins = torch.clamp(x - x[n, y.long()][:, None] + 1.0, min=0)
    return margins.sum() - margins[n, y.long()].sum()


def labels(rng, shape, dims):
    return rng.integers(0, dims["C"], size=shape)


def maxpool(x, k, s):
    """x (N, C, H, W), k x k windows at stride s; the first maximum of a window (row-major) wins
    a tie, as in torch."""
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    flat = windows.reshape(N, C, Ho, Wo, k * k)
    arg = flat.argmax(axis=-1)
    return np.take_along_axis(flat, arg[..., None], -1)[..., 0], (x, arg, k, s)


def maxpool_backward(dout, cache):
    x, arg, k, s = cache
    dx = np.zeros(x.shape, dtype=dout.dtype)
    n, c, i, j = np.indices(arg.shape)
    np.add.at(dx, (n, c, i * s + arg // k, j * s + arg % k), dout)
    return {"x": dx}


def maxpool_every_tie_backward(dout, cache):
    """The classic mistake: the gradient sent to every position equal to the window's max."""
    x, arg, k, s = cache
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for i in range(arg.shape[2]):
        for j in range(arg.shape[3]):
            window = x[:, :, i * s:i * s + k, j * s:j * s + k]
            top = window.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * s:i * s + k, j * s:j * s + k] += (window == top) * \
                dout[:, :, i, j][:, :, None, None]
    return {"x": dx}


def quantized(rng, shape, dims):
    """Values on a coarse grid, so that windows often hold equal maxima (ties)."""
    return rng.integers(-3, 4, size=shape) / 4.0


def elementwise(name, forward, backward, reference):
    return handgrad.Derivation(name=name, forward=forward, backward=backward,
                               reference=reference, inputs={"x": ("N", "D")},
                               dims={"N": (1, 5), "D": (1, 7)})


def pool(k, s, name="", **changes) -> handgrad.Derivation:
    fields = {"name": name or f"maxpool-{k}x{k}-s{s}",
              "forward": lambda x: maxpool(x, k, s), "backward": maxpool_backward,
              "reference": lambda x: F.max_pool2d(x, k, s), "inputs": {"x": ("N", "C", "H", "W")},
              "dims": {"N": (1, 2), "C": (1, 3), "Ho": (1, 4), "Wo": (1, 4)},
              "derive": lambda d: {"H": (d["Ho"] - 1) * s + k, "W": (d["Wo"] - 1) * s + k},
              "output": ("N", "C", "Ho", "Wo")}
    return handgrad.Derivation(**{**fields, **changes})


KINKY = [
    elementwise("relu", relu, relu_backward, torch.relu),
    elementwise("leaky-relu", leaky, leaky_backward, lambda x: F.leaky_relu(x, 0.1)),
    elementwise("abs", absolute, absolute_backward, torch.abs),
    elementwise("clip", clip, clip_backward, lambda x: torch.clamp(x, -0.5, 0.5)),
    handgrad.Derivation(name="hinge", forward=hinge, backward=hinge_backward,
                        reference=hinge_reference, inputs={"x": ("N", "C"), "y": ("N",)},
                        dims={"N": (1, 5), "C": (2, 6)}, nondiff={"y"},
                        samplers={"y": labels}),
    pool(2, 2),
    pool(3, 1),
    pool(2, 1),
]
