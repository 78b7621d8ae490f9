"""The harness tests itself: known-wrong gradients must be rejected, by every oracle on its own,
with the right diagnosis; known-right ones must pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import handgrad
from handgrad.cases import sample_cases
from handgrad.check import check_case
from handgrad.discovery import find

BASE = "mlp-ce-tanh"


def mutant(name: str, key: str, change) -> handgrad.Derivation:
    """The base record with ``grads[key]`` replaced by ``change(grads[key], cache)``."""
    base = find(BASE)

    def backward(dout, cache):
        grads = dict(base.backward(dout, cache))
        grads[key] = change(grads[key], cache)
        return grads

    return dataclasses.replace(base, name=f"{BASE}-{name}", backward=backward)


MUTANTS = {
    "sign-flipped": ("W1", lambda g, c: -g, "sign"),
    "scaled-by-2": ("b2", lambda g, c: 2 * g, "factor"),
    "mean-not-sum": ("W2", lambda g, c: g / len(c.x), "factor"),
    "transposed": ("W2", lambda g, c: g.T.copy(), "wrong-shape"),
    "bias-not-reduced": ("b1", lambda g, c: np.tile(g / len(c.x), (len(c.x), 1)), "wrong-shape"),
    "one-element": ("W1", lambda g, c: g + (np.arange(g.size).reshape(g.shape) == 0) * 0.5,
                    None),
}


@pytest.mark.parametrize("name", MUTANTS)
def test_known_wrong_gradient_is_rejected_with_its_kind(name):
    key, change, kind = MUTANTS[name]
    report = handgrad.check(mutant(name, key, change), seed=0, cases=3, shrink=False)
    assert not report.passed
    wrong = [r for r in report.failures if r.check == "autograd" and r.tensor == key]
    assert wrong, report.render(only_failures=True)
    if kind:
        assert {r.kind for r in wrong} == {kind}, report.render(only_failures=True)


@pytest.mark.parametrize("check", ["autograd", "fd", "complex-step", "taylor"])
def test_each_oracle_alone_rejects_a_sign_flip(check):
    record = mutant("sign-flipped", "W1", lambda g, c: -g)
    case = sample_cases(record, 0, 2)[1]
    results = check_case(record, case, checks=(check,))
    assert any(r.check == check and not r.passed for r in results), \
        f"{check} alone did not reject a flipped sign"


def test_each_oracle_alone_accepts_the_right_gradient():
    record = find(BASE)
    case = sample_cases(record, 0, 2)[1]
    for check in ("autograd", "fd", "complex-step", "taylor", "descent"):
        results = check_case(record, case, checks=(check,))
        assert all(r.passed for r in results) and any(r.check == check for r in results), check


def test_taylor_slope_separates_right_from_wrong():
    right = handgrad.check(BASE, cases=2, checks=("taylor",)).results
    wrong = handgrad.check(mutant("scaled", "b1", lambda g, c: 1.01 * g), cases=2,
                           checks=("taylor",), shrink=False).results
    assert all(abs(r.max_rel - 2) < 0.2 for r in right if r.check == "taylor")
    failed = [r for r in wrong if r.check == "taylor" and r.status == "fail"]
    assert failed, "a 1% error in one gradient must fail the Taylor test"
    # The minimal case (C = 1) has an exactly zero gradient, which 1.01 x leaves right.
    assert all(abs(r.max_rel - 1) < 0.2 for r in failed)


def test_localisation_names_the_first_wrong_intermediate_and_its_tag():
    base = find(BASE)
    from derivations import mlp

    def backward(dout, c):
        dyhat = mlp.dloss_dyhat(dout, c)
        da2 = 2 * mlp.dyhat_da2(dyhat, c)
        return {"yhat": dyhat, "a2": da2, **mlp.backward_from_a2(dout, da2, c)}

    report = handgrad.check(dataclasses.replace(base, backward=backward), cases=2)
    text = "\n".join(report.diagnoses)
    assert "first wrong: dL/da2, see (M7)" in text, text
    assert "correct before it: dL/dyhat (M6)" in text, text
    assert "reproduce: handgrad check" in text
    assert "smallest case with the same failure (autograd a2 [factor])" in text, text


@pytest.mark.parametrize("check", ["autograd", "fd", "complex-step"])
def test_each_float64_oracle_alone_sees_a_relative_error_of_1e_6(check):
    """A constant written with six digits (2/3 as 0.666667) is off by about 5e-7 relative.

    Not the Taylor test: its remainder reaches the round-off floor before an error this small
    turns the slope from 2 to 1 (it resolves about 1e-4; see test_taylor_slope_...)."""
    record = mutant("rounded", "W1", lambda g, c: g * (1 + 1e-6))
    case = sample_cases(record, 0, 2)[1]
    results = check_case(record, case, checks=(check,))
    assert any(r.check == check and r.status == "fail" for r in results), \
        [(r.check, r.tensor, r.status, r.message) for r in results if r.check == check]
