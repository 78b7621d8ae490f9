"""BPTT in the source's own form (section 4.4): the table delta_{t,k} = dL_t/dz_k and the double
sums over t and k <= t, implemented literally (quadratic in T); and the source's errors,
transcribed as records the harness must reject. See ``rnn.md``.

Shapes as in ``rnn.py``; the table is (T, T, B, M) with ``table[t, k]`` = delta_{t+1,k+1}
(zero for k > t), since arrays count steps from 0 and the source from 1.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from derivations import rnn
from handgrad import Derivation
from reference import rnn as ref


def delta_table(dout, c: rnn.Cache) -> tuple[np.ndarray, np.ndarray]:
    """(dS/da_t for every t (T, B, C), the table delta_{t,k} = dS_t/dz_k (T, T, B, M))."""
    da = rnn.output_gradient(dout, c)
    dh_out = da @ c.V                                             # V^T dL_t/da_t: (T, B, M)
    fprime = rnn.activation_derivative(c)
    T = da.shape[0]
    table = np.zeros((T, *dh_out.shape), dh_out.dtype)
    for t in range(T):
        table[t, t] = fprime[t] * dh_out[t]                       # (R16) base case
        for k in range(t - 1, -1, -1):
            table[t, k] = fprime[k] * (table[t, k + 1] @ c.U)     # (R17)
    return da, table


def double_sums(table: np.ndarray, c: rnn.Cache) -> dict[str, np.ndarray]:
    """dU, dW, db as the source writes them: sums over t and k <= t of the table."""
    T, _, B, M = table.shape
    dU = np.zeros((M, M), table.dtype)
    dW = np.zeros((M, c.x.shape[2]), table.dtype)
    db = np.zeros(M, table.dtype)
    for t in range(T):
        for k in range(t + 1):
            dU += table[t, k].T @ c.H[k]                          # (R19) delta_{t,k} h_{k-1}^T
            dW += table[t, k].T @ c.x[k]                          # (R20) delta_{t,k} x_k^T
            db += table[t, k].sum(axis=0)                         # (R21) delta_{t,k}
    return {"U": dU, "W": dW, "b": db}


def double_sums_as_labelled(table: np.ndarray, c: rnn.Cache) -> dict[str, np.ndarray]:
    """The source's last result, labelled dL/dU, taken at its label: dU = sum_t sum_k delta."""
    sums = double_sums(table, c)
    sums["U"] = table.sum(axis=(0, 1, 2))
    return sums


def backward(dout, c: rnn.Cache, *, sums=double_sums) -> dict[str, np.ndarray]:
    """Gradients of S = dout * L through the table; ``sums`` computes dU, dW, db from it."""
    da, table = delta_table(dout, c)
    out = rnn.output_layer_backward(da, c)
    del out["h_out"]  # the table carries V^T dL_t/da_t inside its base case
    dz = table.sum(axis=0)                                        # (R18) sum over t >= k
    return {"a": da, **out, "z": dz, **sums(table, c), **rnn.input_gradients(dz, c)}


def forward_w_declared(x, y, h0, U, W, b, V, c, *, f: str, loss: str):
    """The forward with W stored (D, M), as the source declares it (its R^{N x M}, N being its
    input size); W x_t then only makes sense as W^T x_t, so the (M, D) matrix of the model is
    W^T."""
    return rnn.forward(x, y, h0, U, W.T, b, V, c, f=f, loss=loss)


def delta_norms(inputs, *, f: str, loss: str, w_declared: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """The report's picture of the table: |delta_{t,k}| (the norm over batch and hidden units),
    (T, T), from ``delta_table`` and from autograd of each L_t with respect to z_k.
    ``w_declared``: W comes stored (D, M), as the source declares it."""
    if w_declared:
        inputs = {**inputs, "W": inputs["W"].T}
    _, cache = rnn.forward(**inputs, f=f, loss=loss)
    _, table = delta_table(np.asarray(1.0), cache)
    hand = np.sqrt((table ** 2).sum(axis=(2, 3)))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    per_step, inter = ref.step_losses(**tensors, f=f, loss=loss)
    rows = [torch.autograd.grad(per_step[t], inter["z"], retain_graph=True)[0]
            for t in range(per_step.shape[0])]
    reference = torch.stack(rows).pow(2).sum(dim=(2, 3)).sqrt().numpy()
    return hand, reference


FIGURE = "|dL_t/dz_k| (R16, R17), norm over batch and hidden units: rows t, columns k"


TAGS = {"a": "R6", "V": "R7", "c": "R8", "z": "R18", "U": "R19", "W": "R20", "b": "R21",
        "x": "R14", "h0": "R15"}
# Quadratic in T: the table alone has T^2 B M entries.
DIMS = {"B": (1, 3), "T": (1, 10), "D": (1, 4), "M": (1, 5), "C": (1, 6)}


def make(name: str, f: str, loss: str, **changes) -> Derivation:
    return rnn.make(name, f, loss, **{
        "backward": backward, "dims": DIMS, "intermediates": ("a", "z"), "tags": TAGS,
        "intermediate_shapes": {k: rnn.SHAPES[k] for k in ("a", "z")},
        "variant": {"f": f, "loss": loss, "bptt": "source double sum, quadratic time"},
        "figures": {FIGURE: partial(delta_norms, f=f, loss=loss)},
        **changes})


RECORDS = [make(f"rnn-doublesum-{f}-{loss}", f, loss)
           for f, loss in (("tanh", "ce"), ("sigmoid", "l2"), ("relu", "ce"))]

ERRATA = [
    make("rnn-source-w-shape", "tanh", "ce",
         forward=partial(forward_w_declared, f="tanh", loss="ce"),
         reference=partial(ref.total_loss_w_transposed, f="tanh", loss="ce"),
         inputs={**RECORDS[0].inputs, "W": ("D", "M")},
         # the page stores W as (M, D): its equations in W do not describe this storage
         equations=tuple(t for t in RECORDS[0].equations if t not in ("R1", "R12", "R14",
                                                                      "R20")),
         figures={FIGURE: partial(delta_norms, f="tanh", loss="ce", w_declared=True)},
         expect="reject", expect_kind="wrong-shape",
         erratum="section 4.3 declares W in R^{N x M} (N its input size, our D), section 4.4 "
                 "gives dL/dW = sum_t sum_{k<=t} delta_{t,k} x_k^T, which is M x D: with W stored "
                 "as declared the formula returns the transpose of the gradient"),
    make("rnn-source-du-label", "tanh", "ce",
         backward=partial(backward, sums=double_sums_as_labelled),
         expect="reject", expect_kind="wrong-shape",
         erratum="section 4.4 labels its last result dL/dU = sum_t sum_{k<=t} delta_{t,k}; "
                 "taken at its label it replaces dU by an M-vector (the formula is db's)"),
]
