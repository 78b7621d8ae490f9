"""Bugs people make deriving BPTT by hand, beyond the source's own: each must be caught and
diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py."""

from __future__ import annotations

from functools import partial

import numpy as np

from derivations import rnn


def dU_with_current_state(dout, c: rnn.Cache) -> dict[str, np.ndarray]:
    """(R11) dU = sum_t dz_t h_t^T: the state one step too late (h_t for h_{t-1})."""
    grads = rnn.backward(dout, c)
    T, B, M = grads["z"].shape
    return {**grads, "U": grads["z"].reshape(T * B, M).T @ c.H[1:].reshape(T * B, M)}


def mutant(name: str, text: str, kind: str, backward):
    return rnn.make(f"rnn-mutant-{name}", "tanh", "ce", expect="reject", erratum=text,
                    expect_kind=kind, backward=backward)


RECORDS = [
    mutant("recurrent-term-dropped", "(R9) dL/dh_t without U^T dL/dz_{t+1}: exact at T = 1",
           "slices", partial(rnn.backward, window=1)),
    mutant("off-by-one-state", "(R11) dU from h_t instead of h_{t-1}", "values",
           dU_with_current_state),
]
