"""The vanilla RNN in forward mode: tangents through time, and real-time recurrent learning (RTRL,
Williams and Zipser 1989). See ``rnn_forward.md`` for the math.

The forward, the cache and the conventions are ``rnn.py``'s: time-major x (T, B, D), h0 (B, M),
U (M, M), W (M, D), b (M,), V (C, M), c (C,); ``H[t]`` is h_t for t = 0..T. Arrays of per-step
quantities stack the steps t = 1..T on axis 0 (``z_dot[t - 1]`` is the tangent of z_t).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial

import numpy as np

from derivations import rnn
from handgrad import Derivation
from reference import rnn as ref_bptt
from reference import rnn_forward as ref

EQUATIONS = ("RF1", "RF2", "RF3", "RF4", "RT1", "RT2", "RT3", "RT4", "RT5")


def jvp(tangents: Mapping[str, np.ndarray], c: rnn.Cache,
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The tangent of L along ``tangents`` (keyed x, h0, U, W, b, V, c), and those of z, h, a.

    Carried forward with the state, one step at a time: O(T B (M^2 + M D + M C)), like the
    forward itself.
    """
    x_dot, h0_dot = tangents["x"], tangents["h0"]
    U_dot, W_dot, b_dot = tangents["U"], tangents["W"], tangents["b"]
    V_dot, c_dot = tangents["V"], tangents["c"]
    T, B, D = c.x.shape
    M = c.U.shape[0]
    slope = rnn.activation_derivative(c)                              # f'(z_t), all t
    rows = T * B
    # Every term of (RF1) but U h_dot_{t-1} is known before the loop: one product over all steps.
    z_dot = (x_dot.reshape(rows, D) @ c.W.T + c.x.reshape(rows, D) @ W_dot.T
             + c.H[:-1].reshape(rows, M) @ U_dot.T).reshape(T, B, M)  # (RF1)
    z_dot += b_dot                                                    # (RF1)
    h_dot = np.empty_like(z_dot)
    previous = h0_dot
    for t in range(T):
        z_dot[t] += previous @ c.U.T                                  # (RF1) U h_dot_{t-1}
        h_dot[t] = slope[t] * z_dot[t]                                # (RF2)
        previous = h_dot[t]
    C = c.V.shape[0]
    a_dot = (h_dot.reshape(rows, M) @ c.V.T
             + c.H[1:].reshape(rows, M) @ V_dot.T).reshape(T, B, C)   # (RF3)
    a_dot += c_dot                                                    # (RF3)
    L_dot = np.sum(rnn.output_gradient(1.0, c) * a_dot)               # (RF4)
    return np.asarray(L_dot), {"z": z_dot, "h": h_dot, "a": a_dot}


def input_gradients(dout, c: rnn.Cache) -> dict[str, np.ndarray]:
    """BPTT's gradients of the inputs, for the dot-product test against ``jvp``."""
    grads = rnn.backward(dout, c)
    return {k: grads[k] for k in ("x", "h0", "U", "W", "b", "V", "c")}


def sensitivities(c: rnn.Cache, step):
    """Run the RTRL recursion; ``step(t, sens)`` sees the sensitivities of h_t, t = 1..T.

    ``sens`` holds Gamma_t = dh_t/dtheta per sequence, one array per parameter block, the hidden
    unit of h_t on axis 1: ``U`` (B, M, M, M), ``W`` (B, M, M, D), ``b`` (B, M, M),
    ``h0`` (B, M, M).
    """
    T, B, D = c.x.shape
    M = c.U.shape[0]
    dtype = np.result_type(c.H, c.U, c.W)
    unit = np.arange(M)
    sens = {"U": np.zeros((B, M, M, M), dtype), "W": np.zeros((B, M, M, D), dtype),
         "b": np.zeros((B, M, M), dtype),
         "h0": np.broadcast_to(np.eye(M, dtype=dtype), (B, M, M)).copy()}  # (RT1)
    slope = rnn.activation_derivative(c)
    for t in range(T):
        sens_z = {k: np.matmul(c.U, s.reshape(B, M, -1)).reshape(s.shape)
                  for k, s in sens.items()}                       # (RT2) U Gamma_{t-1}
        sens_z["U"][:, unit, unit, :] += c.H[t][:, None, :]    # (RT2) [h_{t-1}]_j [i = p]
        sens_z["W"][:, unit, unit, :] += c.x[t][:, None, :]    # (RT2) [x_t]_j [i = p]
        sens_z["b"][:, unit, unit] += 1.0                      # (RT2) [i = p]
        sens = {k: slope[t].reshape(B, M, *(1,) * (s.ndim - 2)) * s
                for k, s in sens_z.items()}                           # (RT3)
        step(t, sens)


def rtrl_backward(dout, c: rnn.Cache) -> dict[str, np.ndarray]:
    """Every gradient of S = dout * L carried forward in time by RTRL: O(T B M^2 (M + D)^2).

    x is data here (``nondiff``): RTRL carries the sensitivities of the parameters and h0.
    """
    T, B, _ = c.x.shape
    M, C = c.U.shape[0], c.V.shape[0]
    da = rnn.output_gradient(dout, c)                                 # (RT6)
    dV = da.reshape(T * B, C).T @ c.H[1:].reshape(T * B, M)           # (RT7)
    dc = da.reshape(T * B, C).sum(axis=0)                             # (RT8)
    grads = {"U": 0.0, "W": 0.0, "b": 0.0, "h0": 0.0}

    def accumulate(t: int, sens: dict[str, np.ndarray]) -> None:
        g = da[t] @ c.V                                               # V^T da_t
        for k in ("U", "W", "b"):
            grads[k] = grads[k] + np.einsum("bi,bi...->...", g, sens[k])  # (RT4)
        grads["h0"] = grads["h0"] + np.einsum("bi,bij->bj", g, sens["h0"])  # (RT5)

    sensitivities(c, accumulate)
    shapes = {"U": (M, M), "W": c.W.shape, "b": (M,), "h0": c.H[0].shape}
    # T = 0 never happens (dims T >= 1), but a float 0.0 must still come back as an array.
    grads = {k: np.broadcast_to(np.asarray(g, da.dtype), shapes[k]).copy()
             for k, g in grads.items()}
    return {"a": da, "V": dV, "c": dc, **grads}


def rtrl_flops(d) -> float:
    """FLOPs of the forward and of RTRL at dims d: per step and sequence, U times the
    sensitivities of M (M + D + 2) parameters and h0 entries (2 M^2 (M^2 + M D + 2 M)), their
    contraction with V^T da_t (as many again over M), the forward's products (2 (M^2 + M D + M C))
    and the output layer's gradients (4 M C)."""
    M, D, C = d["M"], d["D"], d["C"]
    per_step = (2 * M * M + 2 * M) * M * (M + D + 2) + 2 * (M * M + M * D + M * C) + 4 * M * C
    return float(d["T"] * d["B"] * per_step)


def make_jvp(f: str, loss: str, name: str = "", **changes) -> Derivation:
    """The forward-mode record of one variant; ``changes`` overrides record fields."""
    return rnn.make(name or f"rnn-jvp-{f}-{loss}", f, loss, **{
        # this page's equations, not the RNN page's; its output layer (RT6)-(RT8) is left out:
        # the evaluator does not yet hide the batch axis of a_t there (a shape failure it
        # reports wrongly), see the pages report
        "equations": EQUATIONS,
        "backward": input_gradients,
        "reference": partial(ref.total_loss, f=f, loss=loss),
        "intermediates": (),
        "intermediate_shapes": rnn.SHAPES,
        "jvp": jvp,
        "jvp_intermediates": ("z", "h", "a"),
        "output": (),
        "tags": {"z": "RF1", "h": "RF2", "a": "RF3"},
        "variant": {"f": f, "loss": loss, "mode": "forward (tangents through time)"},
        "flops": None,
        "source": "",
        **changes})


def make_rtrl(f: str, loss: str, name: str = "", **changes) -> Derivation:
    """The RTRL record of one variant; ``changes`` overrides record fields."""
    return rnn.make(name or f"rnn-rtrl-{f}-{loss}", f, loss, **{
        # this page's equations, not the RNN page's; its output layer (RT6)-(RT8) is left out:
        # the evaluator does not yet hide the batch axis of a_t there (a shape failure it
        # reports wrongly), see the pages report
        "equations": EQUATIONS,
        "backward": rtrl_backward,
        "reference": partial(ref_bptt.total_loss, f=f, loss=loss),
        "nondiff": {"y", "x"},
        "intermediates": ("a",),
        "intermediate_shapes": {"a": rnn.SHAPES["a"]},
        "tags": {"a": "RT6", "V": "RT7", "c": "RT8", "U": "RT4", "W": "RT4", "b": "RT4",
                 "h0": "RT5"},
        "dims": {**rnn.DIMS, "T": (1, 12)},
        "variant": {"f": f, "loss": loss, "gradient": "RTRL, forward in time"},
        "flops": rtrl_flops,
        "source": "",
        **changes})


def jvp_recurrent_tangent_dropped(tangents, c: rnn.Cache):
    """(RF1) without U h_dot_{t-1}: h_{t-1} treated as a constant of step t."""
    return jvp(tangents, replace(c, U=np.zeros_like(c.U)))


def jvp_output_weight_tangent_dropped(tangents, c: rnn.Cache):
    """(RF3) without V_dot h_t: the output layer's tangent taken through h_t only."""
    return jvp({**tangents, "V": np.zeros_like(tangents["V"])}, c)


def rtrl_recurrence_transposed(dout, c: rnn.Cache):
    """(RT2) with U^T Gamma_{t-1}, the transpose BPTT's (R9) uses."""
    return rtrl_backward(dout, replace(c, U=c.U.T))


def rtrl_carried_term_dropped(dout, c: rnn.Cache):
    """(RT2) without U Gamma_{t-1}: only the immediate dependence of z_t on theta."""
    return rtrl_backward(dout, replace(c, U=np.zeros_like(c.U)))


def mistake(make, name: str, text: str, kind: str, **fields) -> Derivation:
    return make("tanh", "ce", name=name, expect="reject", erratum=text, expect_kind=kind,
                bench=(), **fields)


MISTAKES = [
    mistake(make_jvp, "rnn-jvp-mistake-recurrent-tangent-dropped",
            "(RF1) z_dot_t = W x_dot_t + W_dot x_t + U_dot h_{t-1} + b_dot, without U "
            "h_dot_{t-1}: h_{t-1} treated as a constant of step t", "values",
            jvp=jvp_recurrent_tangent_dropped),
    mistake(make_jvp, "rnn-jvp-mistake-output-weight-tangent-dropped",
            "(RF3) a_dot_t = V h_dot_t + c_dot, without V_dot h_t", "values",
            jvp=jvp_output_weight_tangent_dropped),
    mistake(make_rtrl, "rnn-rtrl-mistake-recurrence-transposed",
            "(RT2) Gamma^z_t = U^T Gamma_{t-1} + ..., the transpose of BPTT's U^T dL/dz_{t+1} "
            "carried over to forward mode", "values", backward=rtrl_recurrence_transposed),
    mistake(make_rtrl, "rnn-rtrl-mistake-carried-term-dropped",
            "(RT2) Gamma^z_t = immediate term only, without U Gamma_{t-1}: dL/dh0 is exactly 0",
            "zero", backward=rtrl_carried_term_dropped),
]
VARIANTS = (("tanh", "ce"), ("sigmoid", "l2"), ("relu", "ce"))
JVP_BENCH = ({"B": 32, "T": 50, "D": 64, "M": 128, "C": 10},)
RECORDS = [
    *(make_jvp(f, loss, bench=JVP_BENCH if (f, loss) == ("tanh", "ce") else ())
      for f, loss in VARIANTS),
    *(make_rtrl(f, loss, bench=()) for f, loss in VARIANTS),
    *MISTAKES,
]
