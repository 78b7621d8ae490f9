"""NumPy kernels shared by the LeNet-5 derivations: activations, layout, correlation, pooling.

Inside a derivation every feature map is kept channel-major with the batch between the rows and
the columns, ``(C, H, N, W)``: a correlation is then one matrix product over the whole batch, and
the full correlation of the input gradient is one small product per kernel tap, added into a
shifted window. The
records take and return the usual ``(N, C, H, W)``; :func:`chnw` and :func:`nchw` convert by
views. See ``lenet5.md`` for the symbols.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

A, S = 1.7159, 2.0 / 3.0
"""The paper's squashing function f(a) = A tanh(S a)."""

PAPER_TABLE = np.array([
    # C3 map: 0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
    [1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1],   # S2 map 0
    [1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1],   # S2 map 1
    [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1],   # S2 map 2
    [0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1],   # S2 map 3
    [0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1],   # S2 map 4
    [0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1],   # S2 map 5
])
"""Table I of the paper: T[p, d] = 1 when S2 map p feeds C3 map d. Shape (6, 16)."""


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def scaled_tanh(a: np.ndarray) -> np.ndarray:
    """A tanh(S a), computed in one new array."""
    out = np.multiply(a, S)
    np.tanh(out, out=out)
    out *= A
    return out


def scaled_tanh_slope(a: np.ndarray, fa: np.ndarray) -> np.ndarray:
    """f'(a) = A S (1 - tanh^2(S a)) = (S / A) (A^2 - f(a)^2), in one new array."""
    out = np.multiply(fa, fa)
    np.subtract(A * A, out, out=out)
    out *= S / A
    return out


# Each activation: (f, f' expressed through the pre-activation a and the value f(a)).
ACTIVATIONS = {
    "scaled-tanh": (scaled_tanh, scaled_tanh_slope),
    "tanh": (np.tanh, lambda a, fa: 1.0 - fa * fa),
    "sigmoid": (sigmoid, lambda a, fa: fa * (1.0 - fa)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, fa: (a > 0).astype(a.dtype)),
}


def chnw(x: np.ndarray) -> np.ndarray:
    """View (N, C, H, W) -> (C, H, N, W)."""
    return x.transpose(1, 2, 0, 3)


def nchw(x: np.ndarray) -> np.ndarray:
    """View (C, H, N, W) -> (N, C, H, W)."""
    return x.transpose(2, 0, 1, 3)


def switch_on(W: np.ndarray, T: np.ndarray) -> np.ndarray:
    """W (D, C, kh, kw) with the kernels that the table T (C, D) switches off set to exactly 0."""
    return np.where((T.T != 0)[:, :, None, None], W, 0)


def columns(X: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Every kh x kw window of X (C, H, N, W), as (C*kh*kw, Ho*N*Wo): one copy (im2col)."""
    C, H, N, W = X.shape
    sc, sh, sn, sw = X.strides
    Ho, Wo = H - kh + 1, W - kw + 1
    windows = as_strided(X, (C, kh, kw, Ho, N, Wo), (sc, sh, sw, sh, sn, sw), writeable=False)
    return windows.reshape(C * kh * kw, Ho * N * Wo)


def correlate(X: np.ndarray, Wm: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yt[d] = sum_p Wm[d, p] * X[p] + b[d] (valid cross-correlation), and the im2col columns.

    X (C, H, N, W), Wm (D, C, kh, kw), b (D,) -> Yt (D, Ho, N, Wo), cols (C*kh*kw, Ho*N*Wo).
    """
    D, C, kh, kw = Wm.shape
    _, H, N, W = X.shape
    cols = columns(X, kh, kw)
    Yt = Wm.reshape(D, C * kh * kw) @ cols
    Yt += b[:, None]
    return Yt.reshape(D, H - kh + 1, N, W - kw + 1), cols


def weight_grad(dYt: np.ndarray, cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """dW[d, p] = dYt[d] * X[p], the valid correlation of the input with the output gradient.

    dYt (D, Ho, N, Wo), cols (C*kh*kw, Ho*N*Wo) -> dW of ``shape`` (D, C, kh, kw).
    """
    return (dYt.reshape(len(dYt), -1) @ cols.T).reshape(shape)


def rot180(K: np.ndarray) -> np.ndarray:
    """Every kh x kw kernel of K (..., kh, kw) turned by 180 degrees (a view)."""
    return K[..., ::-1, ::-1]


def full_correlate(dYt: np.ndarray, R: np.ndarray, H: int, W: int) -> np.ndarray:
    """dX[p] = sum_d R[p, d] *~ dYt[d]: the full (wide) correlation of dYt zero-padded by k - 1.

    dYt (D, Ho, N, Wo), R (C, D, kh, kw) -> dX (C, H, N, W) with H = Ho + kh - 1, W = Wo + kw - 1.
    Written tap by tap: in the padded correlation, tap (u, v) of R meets dYt shifted by
    (kh - 1 - u, kw - 1 - v), so it adds R[:, :, u, v] @ dYt to that window of dX. Skipping the
    zero padding does the same products as the valid region alone (no multiplications by the
    padding's zeros) and needs no padded copy; the sum over d is one small product per tap.
    """
    D, Ho, N, Wo = dYt.shape
    C, _, kh, kw = R.shape
    G = dYt.reshape(D, Ho * N * Wo)
    dX = np.zeros((C, H, N, W), dYt.dtype)
    tap = np.empty((C, Ho, N, Wo), dYt.dtype)
    taps = np.ascontiguousarray(R.transpose(2, 3, 0, 1))  # (kh, kw, C, D)
    for u in range(kh):
        for v in range(kw):
            np.matmul(taps[u, v], G, out=tap.reshape(C, Ho * N * Wo))
            dX[:, kh - 1 - u : kh - 1 - u + Ho, :, kw - 1 - v : kw - 1 - v + Wo] += tap
    return dX


def mean_pool(Y: np.ndarray, p: int) -> np.ndarray:
    """Mean of each p x p window of Y (C, H, N, W) -> (C, H // p, N, W // p).

    Rows and columns past the last complete window are dropped, as by torch's ``avg_pool2d``.
    Summed tap by tap over strided views: a reduction over two axes of a 6-d view is several
    times slower in NumPy than p^2 elementwise additions.
    """
    C, H, N, W = Y.shape
    Ho, Wo = H // p, W // p
    total = np.zeros((C, Ho, N, Wo), Y.dtype)
    for i in range(p):
        for j in range(p):
            total += Y[:, i : Ho * p : p, :, j : Wo * p : p]
    total *= 1.0 / (p * p)
    return total


def window_index(n: int, p: int) -> np.ndarray:
    """The window (0-based) each of n input positions lies in, or -1 past the last one."""
    i = np.arange(n)
    return np.where(i < n // p * p, i // p, -1)


def window_scale(p: int) -> float:
    """d mean / d element of a p x p window."""
    return 1.0 / (p * p)


def unpool(G: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """dY[c, i, n, j] = G[c, rows[i], n, cols[j]], and 0 where the index is -1.

    G (C, Ho, N, Wo), rows (H,), cols (W,) -> (C, H, N, W).
    """
    C, Ho, N, Wo = G.shape
    framed = np.zeros((C, Ho + 1, N, Wo + 1), G.dtype)
    framed[:, :Ho, :, :Wo] = G
    return np.take(np.take(framed, rows, axis=1), cols, axis=3)


def upsample(Xt: np.ndarray, p: int, H: int, W: int) -> np.ndarray:
    """Each value of Xt (C, Ho, N, Wo) repeated over its p x p window -> (C, H, N, W)."""
    return unpool(Xt, window_index(H, p), window_index(W, p))


def uniform_fan_in(rng: np.random.Generator, shape, dims, gain: float = 1.0) -> np.ndarray:
    """Weights (out, in, ...) uniform on +-gain sqrt(3 / fan_in): with gain 1, Var(w) fan_in = 1,
    so a layer keeps the scale of its inputs (pre-activations of order 1, f unsaturated)."""
    bound = gain * np.sqrt(3.0 / np.prod(shape[1:]))
    return rng.uniform(-bound, bound, size=shape)


def pool_coefficient(rng: np.random.Generator, shape, dims, gain: float = 1.0) -> np.ndarray:
    """Pooling coefficients of either sign, |w| in gain [0.5, 1.5): none near 0."""
    return gain * rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def random_table(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """A random 0/1 table (C, D) in which every output map d has at least one input map."""
    T = rng.integers(0, 2, size=shape)
    empty = np.flatnonzero(T.sum(axis=0) == 0)
    T[rng.integers(0, shape[0], size=len(empty)), empty] = 1
    return T


def table_or_paper(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """The paper's table at its size (6, 16), a random table otherwise."""
    if tuple(shape) == PAPER_TABLE.shape:
        return PAPER_TABLE.copy()
    return random_table(rng, shape, dims)
