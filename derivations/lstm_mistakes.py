"""Mistakes people make deriving the LSTM's backward by hand, transcribed: each must be rejected
with its diagnosis (``expect_kind``). See *Common mistakes* in ``lstm.md``.

The mistakes sit inside the recursion, so they are written into a plain step-by-step backward,
the way one is first written by hand: one step at a time, the gates split out, no reuse of
buffers. Without a mistake it equals ``lstm.backward`` (``tests/test_lstm.py``).

``handgrad check lstm-mistake`` shows each rejected. The first two are exact at T = 1 (both
recursions empty), so only a case with T >= 2 can show them; the sampled cases always include
one (the case of distinct dimensions has T = 3), and each kind is read there: ``slices`` along T
for both (steps before T wrong), ``slices`` along G for the forget gate's derivative (its block
of z) and for the input gate's bias (its block of b).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from derivations import lstm


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def forget_derivative_at_its_value(f: np.ndarray) -> np.ndarray:
    """sigma'(f) = sigma(f)(1 - sigma(f)): the derivative of the sigmoid evaluated at its output
    f = sigma(z_f) instead of at z_f, where it is f(1 - f)."""
    return sigmoid(f) * (1.0 - sigmoid(f))


def stepwise_backward(dout, c: lstm.Cache, *, carry_h: bool = True, carry_c: bool = True,
                      forget_derivative=lambda f: f * (1.0 - f)) -> dict[str, np.ndarray]:
    """``lstm.backward`` one step at a time; the keywords switch the mistakes on.

    ``carry_h=False`` drops dz_{t+1} Wh^T from (LS12), ``carry_c=False`` drops f_{t+1} dc_{t+1}
    from (LS13), ``forget_derivative`` replaces f(1 - f) in (LS15).
    """
    da = lstm.output_gradient(dout, c)
    out = lstm.output_layer_backward(da, c)
    dh_out = out.pop("h_out")
    T, B, H = dh_out.shape
    zeros = partial(np.zeros, dtype=dh_out.dtype)
    dh, dc = zeros((T, B, H)), zeros((T, B, H))
    dgates, dz = zeros((T, B, 4 * H)), zeros((T, B, 4 * H))
    dz_next, dc_next, f_next = zeros((B, 4 * H)), zeros((B, H)), zeros((B, H))
    for t in reversed(range(T)):
        i, f, g, o = lstm.split_gates(c.gates[t])
        c_prev, tanh_c = c.Cs[t], c.tanh_c[t]
        dh[t] = dh_out[t] + (dz_next @ c.Wh.T if carry_h else 0.0)           # (LS12)
        dc[t] = dh[t] * o * (1.0 - tanh_c**2) + (f_next * dc_next if carry_c else 0.0)  # (LS13)
        di, df, dg, do = dc[t] * g, dc[t] * c_prev, dc[t] * i, dh[t] * tanh_c  # (LS14)
        dgates[t] = np.concatenate([di, df, dg, do], axis=1)
        dz[t] = np.concatenate([di * i * (1.0 - i), df * forget_derivative(f),  # (LS15)
                                dg * (1.0 - g**2), do * o * (1.0 - o)], axis=1)
        dz_next, dc_next, f_next = dz[t], dc[t], f
    inner = {"c": dc, "gates": dgates, "z": dz}
    return {"a": da, **out, "h": dh, **inner, **lstm.parameter_gradients(dz, c),
            **lstm.input_gradients(dz, dc, c)}


def input_gate_bias_from_forget_delta(dout, c: lstm.Cache) -> dict[str, np.ndarray]:
    """(LS18) the input gate's block of db summed from the forget gate's dz."""
    grads = lstm.backward(dout, c)
    _, dz_f, _, _ = lstm.split_gates(grads["z"])
    db = grads["b"].copy()
    H = dz_f.shape[-1]
    db[:H] = dz_f.sum(axis=(0, 1))
    return {**grads, "b": db}


def mistake(name: str, text: str, kind: str, backward, loss: str = "ce"):
    return lstm.make(f"lstm-mistake-{name}", loss, expect="reject", erratum=text,
                     expect_kind=kind, backward=backward)


RECORDS = [
    mistake("recurrent-dh-dropped", "(LS12) dL/dh_t without dz_{t+1} Wh^T, the path through "
            "the next step's gates: exact at T = 1", "slices",
            partial(stepwise_backward, carry_h=False)),
    mistake("dc-overwritten", "(LS13) dL/dc_t = dh_t o_t tanh'(c_t) only, overwriting instead "
            "of adding f_{t+1} dc_{t+1}: exact at T = 1", "slices",
            partial(stepwise_backward, carry_c=False), loss="l2"),
    mistake("forget-derivative-at-output", "(LS15) the forget gate's derivative sigma'(f) = "
            "sigma(f)(1 - sigma(f)) taken at its output f = sigma(z_f) instead of f(1 - f)",
            "slices", partial(stepwise_backward, forget_derivative=forget_derivative_at_its_value)),
    mistake("input-bias-from-forget-delta", "(LS18) db of the input gate summed from the forget "
            "gate's delta dz_f instead of dz_i", "slices", input_gate_bias_from_forget_delta),
]
