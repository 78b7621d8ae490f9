"""Bugs people make deriving the MLP by hand that the source does not make: each must be caught
and diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py."""

from __future__ import annotations

import numpy as np

from derivations import mlp


def activation_derivative_on_output(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """(M11) with f1' evaluated at z = f1(a1) instead of at a1."""
    grads = mlp.backward(dout, c)
    f, fprime = mlp.ACTIVATIONS[c.f1]
    da1 = grads["z"] * fprime(c.z, f(c.z))
    dW1 = da1.T @ c.x + dout * c.lam * c.W1
    return {**grads, "a1": da1, "W1": dW1, "b1": da1.sum(axis=0), "x": da1 @ c.W1}


def decay_added_twice(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """(M8) lam W2 added once in the loss gradient and once more by hand."""
    grads = mlp.backward(dout, c)
    return {**grads, "W2": grads["W2"] + dout * c.lam * c.W2}


def mutant(name: str, text: str, kind: str, backward, f1: str = "tanh"):
    return mlp.make("ce", f1, name=f"mlp-mutant-{name}", expect="reject", erratum=text,
                    expect_kind=kind, backward=backward, dims=mlp.NONDEGENERATE_DIMS, bench=())


RECORDS = [
    mutant("activation-on-output", "(M11) f1' evaluated at f1(a1) instead of a1", "values",
           activation_derivative_on_output),
    mutant("decay-twice", "(M8) the weight-decay term added twice", "values",
           decay_added_twice, f1="sigmoid"),
]
