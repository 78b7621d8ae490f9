"""NumPy kernels shared by the LeNet-5 derivations: activations, layout, correlation, pooling.

Inside a derivation every feature map is kept channel-major with the batch innermost,
``(C, H, W, N)``: a correlation is then one matrix product over the whole batch, each column of
the im2col matrix is a run of ``Wo N`` contiguous numbers (a fast copy), and the full correlation
of the input gradient is one matrix product for all kernel taps followed by one add per tap into
a shifted window, again over runs of ``Wo N`` numbers. The records take and return the usual
``(N, C, H, W)``; :func:`chwn` and :func:`nchw` convert by views. See ``lenet5.md`` for the
symbols.

Large scratch arrays (the im2col matrix, the per-tap products) live in a :func:`workspace` reused
from call to call: on the benchmark machine a fresh multi-megabyte array costs thousands of page
faults, more than the arithmetic done in it. A workspace array never leaves the function that
fills it, so nothing returned or cached aliases one.
"""

from __future__ import annotations

import math

import numpy as np

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

_WORKSPACE: dict[tuple[str, np.dtype], np.ndarray] = {}


def workspace(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A C-contiguous scratch array of ``shape`` for ``role``, the same memory on every call
    (contents left over): fill it, use it, and let nothing that outlives the call point into it.

    One flat buffer per role and dtype, grown to the largest size asked, so the memory held is
    that of the largest layer. Two arrays used at the same time need two roles. Not thread-safe.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buffer = _WORKSPACE.get((role, dtype))
    if buffer is None or buffer.size < size:
        buffer = _WORKSPACE[(role, dtype)] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


def sigmoid(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-a)), in ``out`` or one new array."""
    out = np.negative(a, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def scaled_tanh(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A tanh(S a), in ``out`` or one new array."""
    out = np.multiply(a, S, out=out)
    np.tanh(out, out=out)
    out *= A
    return out


def scaled_tanh_slope(fa: np.ndarray) -> np.ndarray:
    """f'(a) = A S (1 - tanh^2(S a)) = (S / A) (A^2 - f(a)^2), in one new array."""
    out = np.multiply(fa, fa)
    np.subtract(A * A, out, out=out)
    out *= S / A
    return out


# Each activation: (f(a, out=None), f' expressed through the value fa = f(a) alone), each giving
# a new array (f: in ``out`` if given). Only f(a) is kept for the backward (for relu, f(a) > 0
# exactly where a > 0), so the pre-activation of a conv layer can live in the workspace.
ACTIVATIONS = {
    "scaled-tanh": (scaled_tanh, scaled_tanh_slope),
    "tanh": (lambda a, out=None: np.tanh(a, out=out), lambda fa: 1.0 - fa * fa),
    "sigmoid": (sigmoid, lambda fa: fa * (1.0 - fa)),
    "relu": (lambda a, out=None: np.maximum(a, 0.0, out=out),
             lambda fa: (fa > 0).astype(fa.dtype)),
}


def chwn(x: np.ndarray) -> np.ndarray:
    """View (N, C, H, W) -> (C, H, W, N)."""
    return x.transpose(1, 2, 3, 0)


def chwn_copy(x: np.ndarray, block: int = 8) -> np.ndarray:
    """A C-contiguous (C, H, W, N) copy of x (N, C, H, W).

    A transposing copy reads with a stride of one sample, C*H*W numbers. When that stride is a
    multiple of 4 KiB (LeNet's 1 x 32 x 32 inputs), every read falls in the same cache set and
    the copy runs 4x slower, so it goes ``block`` samples at a time; other strides copy at once.
    """
    N = len(x)
    rows = x.reshape(N, -1)
    if rows.shape[1] * x.itemsize % 4096:
        return np.ascontiguousarray(chwn(x))
    out = np.empty((*x.shape[1:], N), x.dtype)
    columns = out.reshape(-1, N)
    for n in range(0, N, block):
        columns[:, n : n + block] = rows[n : n + block].T
    return out


def nchw(x: np.ndarray) -> np.ndarray:
    """View (C, H, W, N) -> (N, C, H, W)."""
    return x.transpose(3, 0, 1, 2)


def switch_on(W: np.ndarray, T: np.ndarray) -> np.ndarray:
    """W (D, C, kh, kw) with the kernels that the table T (C, D) switches off set to exactly 0
    (W itself when T switches every kernel on)."""
    if T.all():
        return W
    return np.where((T.T != 0)[:, :, None, None], W, 0)


def rows_per_product(D: int, Ho: int) -> int:
    """R, the output rows that one row of the kernel matrix computes (see ``blocked_kernels``).

    BLAS multiplies a matrix of a few rows far below its peak (6 rows, C1's maps: about a third),
    so R rows of each output map share a row of the products while R D <= 32. The price is the
    (R - 1) kw zeros of each row-shifted kernel (1.6x the multiplications for C1's R = 4, kh = 5);
    on the benchmark machine C1's forward and backward still run 30 % faster. R divides Ho.
    """
    for R in (4, 2):
        if R * D <= 32 and Ho % R == 0:
            return R
    return 1


def blocked_kernels(Wm: np.ndarray, R: int) -> np.ndarray:
    """The kernel matrix (D*R, C*(kh + R - 1)*kw): row (d, r) is W[d] moved down r rows.

    Against ``columns(X, kh, kw, R)``, row (d, r) gives output rows R i' + r of map d.
    """
    D, C, kh, kw = Wm.shape
    shifted = np.zeros((D, R, C, kh + R - 1, kw), Wm.dtype)
    for r in range(R):
        shifted[:, r, :, r : r + kh] = Wm
    return shifted.reshape(D * R, -1)


def windows(X: np.ndarray, kh: int, kw: int, R: int = 1) -> np.ndarray:
    """Every window of X (C, H, W, N), C-contiguous, as a view (C, kh + R - 1, kw, Ho // R, Wo*N).

    [c, u, v, i'] is the run X[c, R i' + u, v : v + Wo, :] of Wo*N numbers: the input row u
    below output row R i', column offset v.
    """
    C, H, W, N = X.shape
    # The strides of a contiguous array, not X.strides: NumPy calls an array with a length-1
    # axis contiguous whatever that axis's stride (a (C, H, W, 1) view of an (1, C, H, W) array).
    sw = N * X.itemsize
    sh = W * sw
    shape = (C, kh + R - 1, kw, (H - kh + 1) // R, (W - kw + 1) * N)
    view = np.ndarray(shape, X.dtype, X, strides=(H * sh, sh, sw, R * sh, X.itemsize))
    view.flags.writeable = False
    return view


def columns(X: np.ndarray, kh: int, kw: int, R: int = 1,
            out: np.ndarray | None = None) -> np.ndarray:
    """The im2col matrix of X (C, H, W, N): (C*(kh + R - 1)*kw, Ho // R * Wo*N), a copy (into
    ``out`` if given)."""
    view = windows(X, kh, kw, R)
    out = np.empty(view.shape, X.dtype) if out is None else out
    np.copyto(out.reshape(view.shape), view)
    return out.reshape(-1, view.shape[3] * view.shape[4])


def correlate(X: np.ndarray, Wm: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Yt[d] = sum_p Wm[d, p] * X[p] + b[d], the valid cross-correlation, in the workspace.

    X (C, H, W, N) C-contiguous, Wm (D, C, kh, kw), b (D,) -> Yt as a view (D, Ho // R, R, Wo, N)
    (output row R i' + r at [:, i', r]; R from ``rows_per_product``), overwritten by the next call
    of the same size: use it before. The bias rides in the product as one more column of the
    kernel matrix against a row of ones in the im2col matrix, which spares a pass over Yt.
    """
    D, C, kh, kw = Wm.shape
    _, H, W, N = X.shape
    Ho, Wo = H - kh + 1, W - kw + 1
    R = rows_per_product(D, Ho)
    K, L = C * (kh + R - 1) * kw, Ho // R * Wo * N
    cols = workspace("columns", (K + 1, L), X.dtype)
    columns(X, kh, kw, R, out=cols[:K])
    cols[K] = 1.0
    kernels = np.empty((D * R, K + 1), np.result_type(Wm, b))
    kernels[:, :K] = blocked_kernels(Wm, R)
    kernels[:, K] = np.repeat(b, R)
    Yt = workspace("correlation", (D * R, L), np.result_type(kernels, cols))
    np.matmul(kernels, cols, out=Yt)
    return Yt.reshape(D, R, Ho // R, Wo, N).transpose(0, 2, 1, 3, 4)


def blocked_rows(dYt: np.ndarray, R: int) -> np.ndarray:
    """dYt (D, Ho, Wo, N) as the (D*R, Ho // R * Wo*N) matrix whose row (d, r) holds output rows
    R i' + r of map d, the rows of ``blocked_kernels``: dYt itself for R = 1, else a copy in the
    workspace."""
    D, Ho, Wo, N = dYt.shape
    if R == 1:
        return dYt.reshape(D, -1)
    blocked = workspace("blocked gradient", (D, R, Ho // R, Wo * N), dYt.dtype)
    np.copyto(blocked, dYt.reshape(D, Ho // R, R, Wo * N).transpose(0, 2, 1, 3))
    return blocked.reshape(D * R, -1)


def weight_grad(dYt: np.ndarray, X: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """dW[d, p] = dYt[d] * X[p], the valid correlation of the input with the output gradient.

    dYt (D, Ho, Wo, N), X (C, H, W, N) C-contiguous -> dW of ``shape`` (D, C, kh, kw). One
    product of the blocked rows of dYt with the im2col matrix of X gives the gradient of each
    row-shifted kernel of ``blocked_kernels``; kernel row u of W sits at row u + r of shift r.
    """
    D, C, kh, kw = shape
    _, Ho, Wo, N = dYt.shape
    R = rows_per_product(D, Ho)
    K, L = C * (kh + R - 1) * kw, Ho // R * Wo * N
    cols = columns(X, kh, kw, R, out=workspace("columns", (K + 1, L), X.dtype)[:K])
    shifted = (blocked_rows(dYt, R) @ cols.T).reshape(D, R, C, kh + R - 1, kw)
    dW = np.array(shifted[:, 0, :, :kh])
    for r in range(1, R):
        dW += shifted[:, r, :, r : r + kh]
    return dW


def rot180(K: np.ndarray) -> np.ndarray:
    """Every kh x kw kernel of K (..., kh, kw) turned by 180 degrees (a view)."""
    return K[..., ::-1, ::-1]


def full_correlate(dYt: np.ndarray, Rk: np.ndarray, H: int, W: int) -> np.ndarray:
    """dX[p] = sum_d Rk[p, d] *~ dYt[d]: the full (wide) correlation of dYt zero-padded by k - 1.

    dYt (D, Ho, Wo, N), Rk (C, D, kh, kw) -> dX (C, H, W, N) with H = Ho + kh - 1,
    W = Wo + kw - 1. Entry (u, v) of rot180(Rk[p, d]) multiplied X[p] at offset (u, v) from each
    output position, so dX[p] at that offset collects it times dYt[d]: one product of the
    transposed ``blocked_kernels`` (of the kernels rot180(Rk) read back as (D, C, kh, kw)) with
    the blocked rows of dYt gives every offset's contribution (the im2col matrix's gradient);
    one add per offset then puts it in its window (col2im), skipping the zero padding.
    """
    D, Ho, Wo, N = dYt.shape
    C, _, kh, kw = Rk.shape
    R = rows_per_product(D, Ho)
    dtype = np.result_type(Rk, dYt)
    kernels = blocked_kernels(rot180(Rk).transpose(1, 0, 2, 3), R)
    products = workspace("column gradient", (kernels.shape[1], Ho // R * Wo * N), dtype)
    np.matmul(kernels.T, blocked_rows(dYt, R), out=products)
    products = products.reshape(C, kh + R - 1, kw, Ho // R, Wo * N)
    dX = np.zeros((C, H, W * N), dtype)
    for u in range(kh + R - 1):
        for v in range(kw):
            dX[:, u : u + Ho - R + 1 : R, v * N : (v + Wo) * N] += products[:, u, v]
    return dX.reshape(C, H, W, N)


def mean_pool(Y: np.ndarray, p: int) -> np.ndarray:
    """Mean of each p x p window of Y (C, H, W, N) -> (C, H // p, W // p, N).

    Rows and columns past the last complete window are dropped, as by torch's ``avg_pool2d``.
    Summed tap by tap over strided views, each a run of N numbers: a reduction over two axes of
    a 6-d view is several times slower in NumPy than p^2 elementwise additions.
    """
    C, H, W, N = Y.shape
    Ho, Wo = H // p, W // p
    taps = Y[:, : Ho * p, : Wo * p].reshape(C, Ho, p, Wo, p, N)
    total = np.array(taps[:, :, 0, :, 0])
    for i in range(p):
        for j in range(p):
            if i or j:
                total += taps[:, :, i, :, j]
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
    """dY[c, i, j, n] = G[c, rows[i], cols[j], n], and 0 where the index is -1.

    G (C, Ho, Wo, N), rows (H,), cols (W,) -> (C, H, W, N). Both gathers copy runs of N numbers
    (rows of W N numbers along H).
    """
    C, Ho, Wo, N = G.shape
    framed = np.zeros((C, Ho + 1, Wo + 1, N), G.dtype)
    framed[:, :Ho, :Wo] = G
    return np.take(np.take(framed, cols, axis=2), rows, axis=1)


def spread(G: np.ndarray, p: int, H: int, W: int) -> np.ndarray:
    """dY[c, i, j, n] = G[c, i // p, j // p, n] inside the whole p x p windows, 0 in the rows and
    columns past them: ``unpool`` with ``window_index``, as one broadcast copy.

    G (C, Ho, Wo, N) -> (C, H, W, N).
    """
    C, Ho, Wo, N = G.shape
    dY = np.empty((C, H, W, N), G.dtype)
    dY[:, Ho * p :] = 0.0
    dY[:, :, Wo * p :] = 0.0
    dY[:, : Ho * p, : Wo * p].reshape(C, Ho, p, Wo, p, N)[...] = G[:, :, None, :, None]
    return dY


def upsample(Xt: np.ndarray, p: int, H: int, W: int) -> np.ndarray:
    """Each value of Xt (C, Ho, Wo, N) repeated over its p x p window -> (C, H, W, N)."""
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
