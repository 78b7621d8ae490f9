"""Vanilla RNN, section 4 of the source, corrected and given an output layer: see ``rnn.md``.

Linear-time backpropagation through time, full and truncated. Time-major shapes:
x (T, B, D), h0 (B, M), U (M, M), W (M, D), b (M,), V (C, M), c (C,); labels y (T, B) for
cross-entropy, targets y (T, B, C) for L2. The loss is summed over time and over the batch.
The page writes the output layer V, c as W_y, b_y and the softmax p_t as yhat_t (c is the cell
state and V the attention values elsewhere in the catalogue: see notation.md).

``dout`` is the upstream gradient of the harness, which differentiates dout * L for a random
scalar dout: every gradient carries that factor. Truncated BPTT (``truncated``) is not the
gradient of L once T exceeds the window: finite differences, the complex step and the Taylor
test measure the full gradient and must disagree with it, so those records skip them and are
judged against autograd on a reference that cuts the graph at the same places.

Arrays stack the time steps on axis 0: ``H[t]`` is h_t for t = 0..T (``H[0]`` = h0), while
``dz[t]`` and ``dh[t]`` belong to step t + 1 (dL/dz_{t+1}, dL/dh_{t+1}).
Everything that does not depend on the previous step runs as one product over all steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import rnn as ref


def _sigmoid_in_place(a: np.ndarray) -> None:
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


def _tanh_prime_into(h: np.ndarray, out: np.ndarray) -> None:
    np.multiply(h, h, out=out)
    np.subtract(1.0, out, out=out)


def _sigmoid_prime_into(h: np.ndarray, out: np.ndarray) -> None:
    np.subtract(1.0, h, out=out)
    out *= h


def _relu_prime_into(h: np.ndarray, out: np.ndarray) -> None:
    np.greater(h, 0.0, out=out)  # h > 0 exactly where z > 0


# Each activation: (turn z into h = f(z) in place, write f'(z) into out from h = f(z) alone).
# Working in arrays the caller owns spares (T, B, M) temporaries: on the benchmark machine the
# page faults of a fresh array cost more than the arithmetic done in it.
ACTIVATIONS = {
    "tanh": (lambda a: np.tanh(a, out=a), _tanh_prime_into),
    "sigmoid": (_sigmoid_in_place, _sigmoid_prime_into),
    "relu": (lambda a: np.maximum(a, 0.0, out=a), _relu_prime_into),
}


@dataclass
class Cache:
    x: np.ndarray  # (T, B, D)
    y: np.ndarray  # (T, B) labels or (T, B, C) targets
    U: np.ndarray  # (M, M)
    W: np.ndarray  # (M, D)
    V: np.ndarray  # (C, M)
    H: np.ndarray  # (T + 1, B, M): H[t] = h_t
    out: np.ndarray  # (T, B, C): softmax p_t for "ce", a_t for "l2"
    f: str
    loss: str
    min_abs_z: float  # min |z_t| over all t for relu (its kink), inf otherwise


def forward(x, y, h0, U, W, b, V, c, *, f: str, loss: str):
    """L (a 0-d array) summed over time and batch, and the cache.

    H[t] first receives z_t and is then overwritten by h_t = f(z_t): z is never stored.
    """
    T, B, D = x.shape
    M, C = U.shape[0], V.shape[0]
    dtype = np.result_type(x, h0, U, W, b, V, c)
    H = np.empty((T + 1, B, M), dtype)
    H[0] = h0
    np.matmul(x.reshape(T * B, D), W.T, out=H[1:].reshape(T * B, M))  # (R1) W x_t, all t
    H[1:] += b                                                    # (R1)
    step = np.empty((B, M), dtype)
    activate = ACTIVATIONS[f][0]
    min_abs_z = math.inf
    for t in range(1, T + 1):
        # U.T, a view, reaches BLAS as a transposed operand: OpenBLAS multiplies (B, M) by a
        # transposed (M, M) a third faster in float64 than by a row-major one (benchmark VM).
        np.matmul(H[t - 1], U.T, out=step)                        # (R1) U h_{t-1}
        H[t] += step                                              # (R1) H[t] = z_t
        if f == "relu":
            min_abs_z = min(min_abs_z, float(np.abs(H[t]).min()))
        activate(H[t])                                            # (R2) H[t] = h_t
    a = (H[1:].reshape(T * B, M) @ V.T).reshape(T, B, C)          # (R3)
    a += c                                                        # (R3)
    if loss == "ce":
        out = a - a.real.max(axis=2, keepdims=True)               # shifted a_t, then p_t
        at_label = np.take_along_axis(out, y[..., None], axis=2)[..., 0]
        np.exp(out, out=out)
        total = out.sum(axis=2)
        L = (np.log(total) - at_label).sum()                      # (R4), (R5)
        out /= total[..., None]                                   # (R4) yhat_t
    else:
        L = 0.5 * ((a - y) ** 2).sum()                            # (R4'), (R5)
        out = a
    return L, Cache(x, y, U, W, V, H, out, f, loss, min_abs_z)


def output_gradient(dout, c: Cache) -> np.ndarray:
    """dS/da_t for every t: (T, B, C)."""
    if c.loss == "ce":
        T, B = c.y.shape
        da = dout * c.out                                         # (R6) dout yhat_t
        da[np.arange(T)[:, None], np.arange(B), c.y] -= dout      # (R6) - dout e_{y_t}
        return da
    return dout * (c.out - c.y)                                   # (R6)


def output_layer_backward(da: np.ndarray, c: Cache,
                          out: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """dV, dc and dh_out[t] = V^T da_t (in ``out`` if given), the part of dL/dh_t that comes
    from the output."""
    T, B, C = da.shape
    M = c.U.shape[0]
    da2 = da.reshape(T * B, C)
    dV = da2.T @ c.H[1:].reshape(T * B, M)                        # (R7)
    dc = da2.sum(axis=0)                                          # (R8)
    dh_out = np.empty((T, B, M), np.result_type(da, c.V)) if out is None else out
    np.matmul(da2, c.V, out=dh_out.reshape(T * B, M))             # (R9) W_y^T da_t
    return {"V": dV, "c": dc, "h_out": dh_out}


def activation_derivative(c: Cache, out: np.ndarray | None = None) -> np.ndarray:
    """f'(z_t) for every t: (T, B, M), in ``out`` if given."""
    out = np.empty_like(c.H[1:]) if out is None else out
    ACTIVATIONS[c.f][1](c.H[1:], out)
    return out


def through_time(dh: np.ndarray, dz: np.ndarray, U: np.ndarray, window: int | None) -> None:
    """The backward recursion, in place on dh and dz, both (T, B, M).

    On entry dh[t] holds V^T da_{t+1} and dz[t] holds f'(z_{t+1}); on exit they hold
    dL/dh_{t+1} and dL/dz_{t+1}. With a ``window`` (tau on the page) the term U^T dz_{t+1} is
    dropped where h_t enters a new chunk (t = tau, 2 tau, ...).
    """
    T = dh.shape[0]
    step = np.empty_like(dh[0])
    UT = np.ascontiguousarray(U.T)  # UT.T = U as a transposed operand, as in ``forward``
    dz[T - 1] *= dh[T - 1]                                        # (R10)
    for t in range(T - 2, -1, -1):
        if window is None or (t + 1) % window:                    # (R22) h_{t+1} not cut
            np.matmul(dz[t + 1], UT.T, out=step)                  # (R9) U^T dz_{t+1}
            dh[t] += step                                         # (R9)
        dz[t] *= dh[t]                                            # (R10)


def parameter_gradients(dz: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dU, dW, db as single products over all steps."""
    T, B, M = dz.shape
    dz2 = dz.reshape(T * B, M)
    dU = dz2.T @ c.H[:-1].reshape(T * B, M)                       # (R11)
    dW = dz2.T @ c.x.reshape(T * B, -1)                           # (R12)
    db = dz2.sum(axis=0)                                          # (R13)
    return {"U": dU, "W": dW, "b": db}


def input_gradients(dz: np.ndarray, c: Cache,
                    out: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """dx for every step (in ``out`` if given) and dh0."""
    T, B, M = dz.shape
    dx = np.empty(c.x.shape, np.result_type(dz, c.W)) if out is None else out
    np.matmul(dz.reshape(T * B, M), c.W, out=dx.reshape(T * B, -1))  # (R14)
    dh0 = dz[0] @ c.U                                             # (R15)
    return {"x": dx, "h0": dh0}


def backward(dout, c: Cache, *, window: int | None = None) -> dict[str, np.ndarray]:
    """Gradients of S = dout * L; a ``window`` gives truncated BPTT (see ``through_time``)."""
    da = output_gradient(dout, c)
    dh, dz, dx = one_block([c.H[1:].shape, c.H[1:].shape, c.x.shape],
                           np.result_type(da, c.V, c.U, c.W))
    out = output_layer_backward(da, c, out=dh)
    dh = out.pop("h_out")
    dz = activation_derivative(c, out=dz)
    through_time(dh, dz, c.U, window)
    return {"a": da, **out, "h": dh, "z": dz, **parameter_gradients(dz, c),
            **input_gradients(dz, c, out=dx)}


def one_block(shapes: list[tuple[int, ...]], dtype) -> list[np.ndarray]:
    """New C-contiguous arrays of ``shapes``, carved out of one allocation.

    glibc returns freed heap memory to the system once more than twice the largest block it
    ever freed lies unused at the top, and pages come back one fault each (~1.4 us on the
    benchmark VM). Three gradients of (T, B, M) size as three blocks were re-faulted at every
    call, ~4000 faults at the largest benchmark; one block of their total size keeps the
    threshold above what a call frees.
    """
    sizes = [math.prod(s) for s in shapes]
    block = np.empty(sum(sizes), dtype)
    ends = np.cumsum(sizes)
    return [block[e - n : e].reshape(s) for s, n, e in zip(shapes, sizes, ends)]


def labels(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.integers(0, dims["C"], size=shape)


def targets(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=shape)


def recurrent_weights(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """0.9 times a random orthogonal matrix: non-symmetric, and |U h| < |h| keeps h bounded over
    64 relu steps while the gradient still travels many steps back."""
    q, r = np.linalg.qr(rng.standard_normal(shape))
    return 0.9 * q * np.sign(np.diag(r))


def min_abs_z(c: Cache) -> float:
    return c.min_abs_z


# The page's equations full BPTT follows; truncation replaces (R9) by (R22).
FULL_EQUATIONS = {loss: ("R1", "R2", "R3", "R4" if loss == "ce" else "R4'")
                  + tuple(f"R{i}" for i in range(5, 22)) for loss in ("ce", "l2")}
# The table (R16)-(R21) is full BPTT's; the truncated gradient keeps (R10)-(R15).
TRUNCATED_EQUATIONS = {loss: FULL_EQUATIONS[loss][:8] + ("R10", "R11", "R12", "R13", "R14",
                                                         "R15", "R22") for loss in ("ce", "l2")}
SHAPES = {"a": ("T", "B", "C"), "h": ("T", "B", "M"), "z": ("T", "B", "M")}
TAGS = {"a": "R6", "V": "R7", "c": "R8", "h": "R9", "z": "R10", "U": "R11", "W": "R12",
        "b": "R13", "x": "R14", "h0": "R15"}
DIMS = {"B": (1, 3), "T": (1, 64), "D": (1, 4), "M": (1, 5), "C": (1, 6)}
BENCH = ({"B": 1, "T": 50, "D": 32, "M": 64, "C": 10},
         {"B": 32, "T": 50, "D": 64, "M": 128, "C": 10},
         {"B": 32, "T": 100, "D": 128, "M": 256, "C": 10})


def bptt_flops(d) -> float:
    """FLOPs of forward and full BPTT at dims d: six products over all T B rows, each once
    forward and twice backward (weight and input gradient): W x_t (R1, R12, R14), U h_{t-1} (R1,
    R11, R9/R15) and V h_t (R3, R7, R9). Elementwise work is not counted."""
    return 6.0 * d["T"] * d["B"] * (d["D"] * d["M"] + d["M"] * d["M"] + d["M"] * d["C"])


def make(name: str, f: str, loss: str, **changes) -> Derivation:
    """The record of one variant; ``changes`` overrides record fields."""
    opts = {"f": f, "loss": loss}
    fields = {
        "name": name,
        "forward": partial(forward, **opts),
        "backward": backward,
        "reference": partial(ref.total_loss, **opts),
        "inputs": {"x": ("T", "B", "D"), "y": ("T", "B") if loss == "ce" else ("T", "B", "C"),
                   "h0": ("B", "M"), "U": ("M", "M"), "W": ("M", "D"), "b": ("M",),
                   "V": ("C", "M"), "c": ("C",)},
        "dims": DIMS,
        "nondiff": {"y"},
        "intermediates": ("a", "h", "z"),
        "intermediate_shapes": SHAPES,
        "tags": TAGS,
        "samplers": {"y": labels if loss == "ce" else targets, "U": recurrent_weights},
        "kink_distance": min_abs_z if f == "relu" else None,
        "variant": {"f": f, "loss": loss, "bptt": "full, linear time"},
        "source": "bp-derivation.txt section 4",
        "complex_step": f != "relu",
        "flops": bptt_flops,
        "symbols": {"W_y": "V", "b_y": "c", "z_t": "z_t", "h_t": "h_t", "\\hat y_t": "yhat",
                    "\\delta_{t,k}": r"\frac{\partial L_t}{\partial z_k}"},
        "equations": FULL_EQUATIONS[loss],
    }
    return Derivation(**{**fields, **changes})


RECORDS = [make(f"rnn-{f}-{loss}", f, loss, **({"bench": BENCH} if (f, loss) == ("tanh", "ce")
                                                else {}))
           for f in ACTIVATIONS for loss in ("ce", "l2")]


TRUNCATION_SKIP = "truncated BPTT departs on purpose from the gradient of the forward, which " \
    "this oracle differentiates; autograd on the reference that detaches h at the chunk " \
    "boundaries is the oracle"


def truncated(f: str, loss: str, window: int) -> Derivation:
    """Truncated BPTT with chunks of ``window`` steps, against the reference that detaches h there.

    Finite differences, the complex step and the Taylor test differentiate the forward, whose
    gradient is the full one; truncation departs from it on purpose once T > window, so the
    record skips them (reported as skipped rows, with the reason) and autograd on the reference
    that detaches h at the chunk boundaries judges it, in float64 and float32, with the contract
    and forward checks. ``tests/test_rnn.py`` adds that the last chunk equals full BPTT and that
    a window >= T is full BPTT exactly.
    """
    return make(f"rnn-tbptt{window}-{f}-{loss}", f, loss,
                backward=partial(backward, window=window),
                reference=partial(ref.total_loss, f=f, loss=loss, window=window),
                tags={**TAGS, "h": "R22"},
                equations=TRUNCATED_EQUATIONS[loss],
                skip={k: TRUNCATION_SKIP for k in ("fd", "complex-step", "taylor")},
                variant={"f": f, "loss": loss, "bptt": f"truncated, chunks of {window} steps"})


TRUNCATED = (("tanh", "ce", 4), ("sigmoid", "l2", 1), ("relu", "ce", 3))
TRUNCATED_RECORDS = [truncated(*spec) for spec in TRUNCATED]
