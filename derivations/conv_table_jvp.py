"""The connection-table convolution of LeNet-5 in forward mode: see ``conv_table_jvp.md``.

The layer, its cache and its backward are ``lenet5_layers.py``'s (maps in the (C, H, W, N) layout
of ``_lenet5_kernels``): X (N, C, H, W), W (D, C, kh, kw), b (D,), table T (C, D) -> Y = f(Yt)
(N, D, Ho, Wo). The tangent is one correlation with the kernels and the tangents stacked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from derivations._lenet5_kernels import chwn_copy, correlate, nchw, switch_on
from derivations.lenet5_layers import (
    C1,
    C3,
    Conv,
    activation_slope,
    conv_record_backward,
    make_conv,
)
from handgrad import Derivation


def jvp(tangents: Mapping[str, np.ndarray], c: Conv, *,
        table: Callable[[np.ndarray, np.ndarray], np.ndarray] = switch_on,
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The tangent of Y (N, D, Ho, Wo) along ``tangents`` (X, W, b), and that of Yt.

    ``table(W_dot, T)`` applies the connection table to the weight tangent (a mistake swaps it).
    By bilinearity, Wm * X_dot + W_dot_m * X is the correlation of the input and its tangent,
    stacked as 2 C maps, with the kernels [Wm | W_dot_m]: one product for both terms, with
    b_dot riding in it as the bias.
    """
    W_dot_m = table(tangents["W"], c.T)                                # (CJ1)
    stacked = np.concatenate([chwn_copy(tangents["X"]), c.X])          # (2C, H, W, N)
    kernels = np.concatenate([c.Wm, W_dot_m], axis=1)                  # (D, 2C, kh, kw)
    # correlate returns a view of its workspace, rows blocked: copy it out as (D, Ho, Wo, N).
    Yt_dot = np.array(correlate(stacked, kernels, tangents["b"])).reshape(c.Y.shape)  # (CJ2)
    Y_dot = activation_slope(c)
    Y_dot *= Yt_dot                                                    # (CJ3)
    return nchw(Y_dot), {"Yt": nchw(Yt_dot)}


def input_gradients(dY, c: Conv) -> dict[str, np.ndarray]:
    """The layer's gradients of X, W, b (``lenet5_layers``), for the dot-product test."""
    grads = conv_record_backward(dY, c)
    return {k: grads[k] for k in ("X", "W", "b")}


def conv_jvp_flops(d) -> float:
    """FLOPs of the forward correlation (L1) and of the tangent's, over 2 C stacked maps (CJ2):
    3 N D C kh kw Ho Wo multiply-adds. Activation and slope are not counted."""
    return 6.0 * d["N"] * d["D"] * d["C"] * d["kh"] * d["kw"] * d["Ho"] * d["Wo"]


def make(f: str, name: str = "", **changes) -> Derivation:
    """The forward-mode record of the table convolution with activation f."""
    return make_conv(f, **{
        "name": name or f"conv-table-jvp-{f}",
        "backward": input_gradients,
        "jvp": jvp,
        "intermediates": (),
        "jvp_intermediates": ("Yt",),
        "tags": {"Yt": "CJ2"},
        "variant": {"layer": "conv with connection table", "f": f, "mode": "forward (jvp)"},
        "source": "",
        "bench": ({**C1, "N": 64}, {**C3, "N": 64}) if f == "scaled-tanh" else (),
        "flops": conv_jvp_flops,
        **changes})


def table_read_transposed(W_dot: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(CJ1) with T (C, D) read as (D, C): kernel (d, p) kept where T[d, p] = 1."""
    return np.where((T != 0)[:, :, None, None], W_dot, 0)


def table_ignored(W_dot: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(CJ1) skipped: the tangent of every kernel used, switched on or off."""
    return W_dot


def bias_tangent_dropped(tangents, c: Conv):
    """(CJ2) without b_dot."""
    return jvp({**tangents, "b": np.zeros_like(tangents["b"])}, c)


def weight_tangent_dropped(tangents, c: Conv):
    """(CJ2) without W_dot_m * X: the tangent taken through the input only."""
    return jvp({**tangents, "W": np.zeros_like(tangents["W"])}, c)


SQUARE = {"N": (1, 3), "C": (3, 3), "D": (3, 3), "kh": (1, 3), "kw": (1, 3), "Ho": (1, 3),
          "Wo": (1, 3)}
"""C = D, so that a table read as (D, C) fits; three maps each, so a random table is not
symmetric in most draws."""


def mistake(name: str, text: str, kind: str, jvp_fn, **changes) -> Derivation:
    return make("scaled-tanh", name=f"conv-table-jvp-mistake-{name}", expect="reject",
                erratum=text, expect_kind=kind, jvp=jvp_fn, bench=(), **changes)


MISTAKES = [
    # The output maps whose table column equals its row stay right: 'slices' along D where the
    # drawn table has such a map, 'values' where it has none (seeds 0 and 1 draw one, 2 and 3
    # do not), so no single kind is expected.
    mistake("table-transposed", "(CJ1) W_dot switched on by T read as (D, C): kernel (d, p) "
            "follows T[d, p] instead of T[p, d]", "",
            lambda t, c: jvp(t, c, table=table_read_transposed), dims=SQUARE),
    # Only the output maps with a switched-off kernel go wrong: the maps the table feeds from
    # every input map are right, so the diagnosis names the wrong maps (slices along D).
    mistake("table-ignored", "(CJ1) the tangent of W used without the table: switched-off "
            "kernels move the output", "slices", lambda t, c: jvp(t, c, table=table_ignored)),
    # The missing b_dot is the same for every sample and position of an output map: an offset.
    mistake("bias-tangent-dropped", "(CJ2) Yt_dot = Wm * X_dot + W_dot_m * X, without b_dot",
            "offset", bias_tangent_dropped),
    mistake("weight-tangent-dropped", "(CJ2) Yt_dot = Wm * X_dot + b_dot, without W_dot_m * X",
            "values", weight_tangent_dropped),
]

# The paper's activation, and relu for its kinks; tanh and sigmoid differ from the scaled tanh
# only in f' of (CJ3), which the backward records of lenet5_layers.py already check.
RECORDS = [*(make(f) for f in ("scaled-tanh", "relu")), *MISTAKES]
