"""LSTM with backpropagation through time, a derivation without a source write-up: see ``lstm.md``.

Time-major, the batch in the rows: x (T, B, D), h0 (B, H), c0 (B, H); the four gates packed in
PyTorch's order i, f, g, o along the last axis, Wx (D, G), Wh (H, G), b (G,) with G = 4H; the
output layer Wy (H, C), by (C,); labels y (T, B) for cross-entropy, targets y (T, B, C) for L2.
The loss is summed over time and batch.

``Hs[t]`` and ``Cs[t]`` hold h_t and c_t for t = 0..T (``Hs[0]`` = h0, ``Cs[0]`` = c0); every other
array stacked over time holds step t + 1 at index t (``gates[t]`` are the gates of step t + 1).
Everything that does not depend on the previous step runs as one product over all steps.

``dout`` is the upstream gradient of the harness, which differentiates dout * L for a random
scalar dout: every gradient carries that factor. Sampled weights are uniform on
+-1/sqrt(fan-in), so that the gates do not saturate. Counting the matrix products only (2 rows
cols inner each), forward and backward take 6 T B (4 H D + 4 H^2 + H C) operations (``flops``).

The intermediates are reported in backward order ``a``, ``h``, ``c``, ``gates``, ``z``; the
reference adds zero probes where z_t, the gate values, c_t and h_t are formed, so that their
gradients are the totals over every use. That order is the order within one step; across steps
the recursion interleaves them, so an error in (LS13)-(LS15) at step t reaches dL/dh_{t-1} through
(LS12), and at T >= 2 the first wrong intermediate named can be ``h`` at an earlier step (the
slices along T show where it starts). At T = 1, the minimal case, it is exactly the equation at
fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from handgrad import Derivation
from reference import lstm as ref


def _sigmoid_in_place(a: np.ndarray) -> None:
    """1 / (1 + exp(-a)) into ``a``, a column block of the gates (a strided view).

    Not ``np.negative(a, out=a)``: NumPy 2.4.6 computes that wrongly in place on views with a
    16-byte (float32) or 64-byte (float64) element stride, such as one gate's column when H = 1
    (``x = np.arange(1., 9, dtype=np.float32)[::4]; np.negative(x, out=x)`` gives [-1, -2]).
    """
    np.multiply(a, -1.0, out=a)
    np.exp(a, out=a)
    a += 1.0
    np.reciprocal(a, out=a)


@dataclass
class Cache:
    x: np.ndarray  # (T, B, D)
    y: np.ndarray  # (T, B) labels or (T, B, C) targets
    Wx: np.ndarray  # (D, G)
    Wh: np.ndarray  # (H, G)
    Wy: np.ndarray  # (H, C)
    Hs: np.ndarray  # (T + 1, B, H): Hs[t] = h_t
    Cs: np.ndarray  # (T + 1, B, H): Cs[t] = c_t
    gates: np.ndarray  # (T, B, G): [i | f | g | o] of step t + 1, after their nonlinearities
    tanh_c: np.ndarray  # (T, B, H): tanh(c_{t+1})
    out: np.ndarray  # (T, B, C): softmax p_t for "ce", a_t for "l2"
    loss: str


def split_gates(block: np.ndarray) -> list[np.ndarray]:
    """Views [i, f, g, o] of a (..., 4H) array."""
    return np.split(block, 4, axis=-1)


def forward(x, y, h0, c0, Wx, Wh, b, Wy, by, *, loss: str):
    """L (a 0-d array) summed over time and batch, and the cache.

    ``gates[t]`` first receives z_{t+1} and is then overwritten by the gate values: the
    pre-activations are never stored, since every derivative below is a function of the values.
    """
    T, B, D = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, c0, Wx, Wh, b, Wy, by)
    gates = np.empty((T, B, 4 * H), dtype)
    np.matmul(x.reshape(T * B, D), Wx, out=gates.reshape(T * B, 4 * H))  # (LS1) x_t Wx, all t
    gates += b                                                         # (LS1)
    Hs = np.empty((T + 1, B, H), dtype)
    Cs = np.empty((T + 1, B, H), dtype)
    Hs[0], Cs[0] = h0, c0
    tanh_c = np.empty((T, B, H), dtype)
    step = np.empty((B, 4 * H), dtype)
    candidate = np.empty((B, H), dtype)
    for t in range(T):
        np.matmul(Hs[t], Wh, out=step)                                 # (LS1) h_{t-1} Wh
        gates[t] += step                                               # (LS1) z_t
        _sigmoid_in_place(gates[t, :, :2 * H])                         # (LS2) i_t, f_t
        np.tanh(gates[t, :, 2 * H:3 * H], out=gates[t, :, 2 * H:3 * H])  # (LS3) g_t
        _sigmoid_in_place(gates[t, :, 3 * H:])                         # (LS2) o_t
        i, f, g, o = split_gates(gates[t])
        np.multiply(f, Cs[t], out=Cs[t + 1])                           # (LS4) f_t c_{t-1}
        np.multiply(i, g, out=candidate)                               # (LS4) i_t g_t
        Cs[t + 1] += candidate                                         # (LS4) c_t
        np.tanh(Cs[t + 1], out=tanh_c[t])                              # (LS5)
        np.multiply(o, tanh_c[t], out=Hs[t + 1])                       # (LS5) h_t
    C = Wy.shape[1]
    a = (Hs[1:].reshape(T * B, H) @ Wy).reshape(T, B, C)               # (LS6)
    a += by                                                            # (LS6)
    if loss == "ce":
        out = a - a.real.max(axis=2, keepdims=True)                    # shifted a_t, then p_t
        at_label = np.take_along_axis(out, y[..., None], axis=2)[..., 0]
        np.exp(out, out=out)
        total = out.sum(axis=2)
        L = (np.log(total) - at_label).sum()                           # (LS7), (LS8)
        out /= total[..., None]                                        # (LS7) p_t
    else:
        L = 0.5 * ((a - y) ** 2).sum()                                 # (LS7), (LS8)
        out = a
    return L, Cache(x, y, Wx, Wh, Wy, Hs, Cs, gates, tanh_c, out, loss)


def output_gradient(dout, c: Cache) -> np.ndarray:
    """dS/da_t for every t: (T, B, C)."""
    if c.loss == "ce":
        T, B = c.y.shape
        da = dout * c.out                                              # (LS9) dout p_t
        da[np.arange(T)[:, None], np.arange(B), c.y] -= dout           # (LS9) - dout e_{y_t}
        return da
    return dout * (c.out - c.y)                                        # (LS9)


def output_layer_backward(da: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dWy, dby and dh_out[t] = da_t Wy^T, the part of dL/dh_t that comes from the output."""
    T, B, C = da.shape
    H = c.Wy.shape[0]
    da2 = da.reshape(T * B, C)
    dWy = c.Hs[1:].reshape(T * B, H).T @ da2                           # (LS10)
    dby = da2.sum(axis=0)                                              # (LS11)
    dh_out = (da2 @ c.Wy.T).reshape(T, B, H)                           # (LS12) da_t Wy^T
    return {"Wy": dWy, "by": dby, "h_out": dh_out}


def gate_derivatives(c: Cache) -> np.ndarray:
    """[i(1-i) | f(1-f) | 1-g^2 | o(1-o)] for every step, (T, B, G): each nonlinearity's
    derivative written through its own output, for all steps at once."""
    out = np.subtract(1.0, c.gates)
    out *= c.gates                                                     # (LS15) s' = s(1 - s)
    g, dg_dzg = split_gates(c.gates)[2], split_gates(out)[2]
    np.multiply(g, g, out=dg_dzg)
    np.subtract(1.0, dg_dzg, out=dg_dzg)                               # (LS15) tanh' = 1 - g^2
    return out


def through_time(dh: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """The backward recursion over t = T..1.

    On entry dh[t] holds da_{t+1} Wy^T; on exit it holds the total dL/dh_{t+1}. Returns the
    totals dL/dc (T, B, H), the gate values' gradients (T, B, G) and dL/dz (T, B, G).
    """
    T = dh.shape[0]
    dc = np.empty_like(dh)
    dgates = np.empty_like(c.gates)
    dz = gate_derivatives(c)  # multiplied in place, step by step, into dL/dz
    _, f, _, o = split_gates(c.gates)
    # o_t tanh'(c_t) for every step at once: the local derivative of h_t with respect to c_t.
    dh_dc = np.multiply(c.tanh_c, c.tanh_c)
    np.subtract(1.0, dh_dc, out=dh_dc)
    dh_dc *= o
    WhT = np.ascontiguousarray(c.Wh.T)  # a row-major right operand: faster small products
    recurrent = np.empty_like(dh[0])
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            np.matmul(dz[t + 1], WhT, out=recurrent)                   # (LS12) dz_{t+1} Wh^T
            dh[t] += recurrent                                         # (LS12)
        np.multiply(dh[t], dh_dc[t], out=dc[t])                        # (LS13) dh_t o_t tanh'(c_t)
        if t < T - 1:
            np.multiply(f[t + 1], dc[t + 1], out=recurrent)            # (LS13) f_{t+1} dc_{t+1}
            dc[t] += recurrent                                         # (LS13)
        i, _, g, _ = split_gates(c.gates[t])
        di, df, dg, do = split_gates(dgates[t])
        np.multiply(dc[t], g, out=di)                                  # (LS14) di_t
        np.multiply(dc[t], c.Cs[t], out=df)                            # (LS14) df_t, c_{t-1}
        np.multiply(dc[t], i, out=dg)                                  # (LS14) dg_t
        np.multiply(dh[t], c.tanh_c[t], out=do)                        # (LS14) do_t
        dz[t] *= dgates[t]                                             # (LS15)
    return {"c": dc, "gates": dgates, "z": dz}


def parameter_gradients(dz: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dWx, dWh, db as single products over all steps."""
    T, B, G = dz.shape
    H = c.Wh.shape[0]
    dz2 = dz.reshape(T * B, G)
    dWx = c.x.reshape(T * B, -1).T @ dz2                               # (LS16)
    dWh = c.Hs[:-1].reshape(T * B, H).T @ dz2                          # (LS17)
    db = dz2.sum(axis=0)                                               # (LS18)
    return {"Wx": dWx, "Wh": dWh, "b": db}


def input_gradients(dz: np.ndarray, dc: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """dx for every step, dh0 and dc0."""
    T, B, G = dz.shape
    dx = (dz.reshape(T * B, G) @ c.Wx.T).reshape(T, B, -1)             # (LS19)
    dh0 = dz[0] @ c.Wh.T                                               # (LS20)
    _, f, _, _ = split_gates(c.gates[0])
    dc0 = dc[0] * f                                                    # (LS21)
    return {"x": dx, "h0": dh0, "c0": dc0}


def backward(dout, c: Cache) -> dict[str, np.ndarray]:
    """Gradients of S = dout * L, keyed by input, and the intermediates a, h, c, gates, z."""
    da = output_gradient(dout, c)
    out = output_layer_backward(da, c)
    dh = out.pop("h_out")
    inner = through_time(dh, c)
    return {"a": da, **out, "h": dh, **inner, **parameter_gradients(inner["z"], c),
            **input_gradients(inner["z"], inner["c"], c)}


def labels(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.integers(0, dims["C"], size=shape)


def targets(rng: np.random.Generator, shape, dims) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=shape)


def fan_in_weights(rng: np.random.Generator, shape, dims) -> np.ndarray:
    """Uniform on +-1/sqrt(fan_in), fan_in = shape[0] (the rows multiply the input): each
    pre-activation stays O(1) at any width, so the gates do not saturate and their derivatives,
    which every gradient here passes through, stay away from zero."""
    return rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(shape[0])


def four_gates(dims):
    return {"G": 4 * dims["H"]}


def gemm_flops(dims) -> float:
    """2 rows cols inner per product: forward x Wx, h Wh (T of them), h Wy; the backward's
    dWx, dx, dWh, dz Wh^T, dWy, da Wy^T. Elementwise work (O(T B H), about 40 operations per
    hidden unit and step) is not counted."""
    T, B, D, H, C = (dims[k] for k in ("T", "B", "D", "H", "C"))
    return 3 * 2 * T * B * (D * 4 * H + H * 4 * H + H * C)


SHAPES = {"a": ("T", "B", "C"), "h": ("T", "B", "H"), "c": ("T", "B", "H"),
          "gates": ("T", "B", "G"), "z": ("T", "B", "G")}
TAGS = {"a": "LS9", "Wy": "LS10", "by": "LS11", "h": "LS12", "c": "LS13", "gates": "LS14",
        "z": "LS15", "Wx": "LS16", "Wh": "LS17", "b": "LS18", "x": "LS19", "h0": "LS20",
        "c0": "LS21"}
# T = 1 is the minimal case (both recurrences empty); the distinct case has B=2, T=3, D=4, H=5,
# C=6, and sampled ones reach T = 8. C >= 2: with one class the cross-entropy is log 1 = 0 and
# every gradient vanishes.
DIMS = {"B": (1, 3), "T": (1, 8), "D": (1, 4), "H": (1, 5), "C": (2, 6)}
BENCH = ({"B": 32, "T": 50, "D": 64, "H": 128, "C": 10},
         {"B": 32, "T": 100, "D": 128, "H": 256, "C": 10})


def make(name: str, loss: str, **changes) -> Derivation:
    """The record of one loss; ``changes`` overrides record fields (used by the mistakes)."""
    fields = {
        "name": name,
        "forward": partial(forward, loss=loss),
        "backward": backward,
        "reference": partial(ref.total_loss, loss=loss),
        "inputs": {"x": ("T", "B", "D"), "y": ("T", "B") if loss == "ce" else ("T", "B", "C"),
                   "h0": ("B", "H"), "c0": ("B", "H"), "Wx": ("D", "G"), "Wh": ("H", "G"),
                   "b": ("G",), "Wy": ("H", "C"), "by": ("C",)},
        "dims": DIMS,
        "derive": four_gates,
        "nondiff": {"y"},
        "intermediates": ("a", "h", "c", "gates", "z"),
        "intermediate_shapes": SHAPES,
        "tags": TAGS,
        "samplers": {"y": labels if loss == "ce" else targets, "Wx": fan_in_weights,
                     "Wh": fan_in_weights, "Wy": fan_in_weights},
        "variant": {"loss": loss, "bptt": "full, linear time"},
        "symbols": {k: k for k in ("z_t", "h_t", "c_t", "i_t", "f_t", "g_t", "o_t")}
        | {"z^i_t": "zi_t", "z^f_t": "zf_t", "z^g_t": "zg_t", "z^o_t": "zo_t",
           "\\hat y_t": "yhat"},
        "complex_step": True,
        "output": (),
        "strict_dtype": True,
        "flops": gemm_flops,
    }
    return Derivation(**{**fields, **changes})


RECORDS = [make("lstm-ce", "ce", bench=BENCH), make("lstm-l2", "l2")]
