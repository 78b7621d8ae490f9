"""Finite differences that know their limits: kinks, unholomorphic forwards, round-off."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import handgrad
from handgrad.cases import Case
from handgrad.check import check_case


def relu_forward(x):
    return np.maximum(x, 0.0), x


def relu_backward(dout, x):
    return {"x": dout * (x > 0)}


def near_kink(rng, shape, dims):
    """Entries spread over [-1, 1] but one of them 1e-5 above the kink at 0."""
    x = rng.uniform(-1.0, 1.0, shape)
    x.flat[0] = 1e-5
    return x


def on_kink(rng, shape, dims):
    """Entries spread over [-1, 1] but one of them exactly on the kink."""
    x = rng.uniform(-1.0, 1.0, shape)
    x.flat[0] = 0.0
    return x


RELU = handgrad.Derivation(
    name="relu-at-kink", forward=relu_forward, backward=relu_backward,
    reference=lambda x: torch.relu(x), inputs={"x": ("N",)}, dims={"N": (4, 4)},
    samplers={"x": near_kink})


def fd_row(record):
    (row,) = [r for r in check_case(record, Case.of({"N": 4}, 1), ("fd",)) if r.check == "fd"]
    return row


def test_a_difference_near_a_kink_shrinks_its_step_to_stay_on_one_side():
    """The default step (1.8e-4) straddles the kink 1e-5 away; the step shrinks until the
    stencil is smooth, and the estimate is then decisive."""
    row = fd_row(RELU)
    assert row.status == "pass" and "kink" not in row.message, row.message
    assert row.max_abs < 1e-8


def test_a_point_on_a_kink_is_judged_as_a_subgradient():
    """relu at exactly 0: any value between the one-sided derivatives 0 and dout is valid."""
    row = fd_row(dataclasses.replace(RELU, name="relu-on-kink", samplers={"x": on_kink}))
    assert row.status == "pass", row.message
    assert "1 entries lie on a kink" in row.message


def test_a_value_outside_the_subgradients_at_a_kink_is_rejected():
    """Finite differences alone only note a value outside the one-sided derivatives (where
    several kinks meet it can be valid); with autograd's value differing there, the report
    says subgradient."""
    def backward(dout, x):
        return {"x": dout * np.where(x == 0, 2.0, x > 0)}

    wrong = dataclasses.replace(RELU, name="relu-twice-at-kink", samplers={"x": on_kink},
                                backward=backward)
    row = fd_row(wrong)
    assert row.status == "unreliable" and "outside the one-sided derivatives" in row.message
    report = handgrad.check(wrong, dims={"N": 4}, data_seed=1)
    assert report.kind == "subgradient", report.render()


def test_a_wrong_gradient_near_a_kink_still_fails():
    wrong = dataclasses.replace(RELU, name="relu-wrong",
                                backward=lambda d, x: {"x": d * (x > 0) * 2.0})
    assert fd_row(wrong).status == "fail"


def test_complex_step_on_an_unholomorphic_forward_is_unreliable_not_a_failure():
    """|x| on complex input is not holomorphic: the complex step is then meaningless."""
    def forward(x):
        return np.abs(x) * x, x

    def backward(dout, x):
        return {"x": dout * 2 * np.abs(x)}

    record = handgrad.Derivation(
        name="abs-square", forward=forward, backward=backward,
        reference=lambda x: torch.abs(x) * x, inputs={"x": ("N",)}, dims={"N": (3, 5)},
        complex_step=True)
    results = check_case(record, Case.of({"N": 4}, 2))
    cs = [r for r in results if r.check == "complex-step"]
    assert cs and all(r.status == "unreliable" and r.kind == "not-holomorphic" for r in cs)
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_richardson_error_estimate_bounds_the_true_error():
    """On a smooth function with a known derivative the estimate is within its own bound."""
    from handgrad.oracles.numerics import fd

    def evaluate(name, x):
        terms = np.sin(3 * x) * np.exp(x)
        return terms.sum(), float(np.abs(terms).sum())

    x = np.linspace(-1, 1, 7)
    est = fd.elementwise(evaluate, "x", x)
    truth = 3 * np.cos(3 * x) * np.exp(x) + np.sin(3 * x) * np.exp(x)
    assert np.all(np.abs(est.value - truth) <= est.error + 1e-10)
    assert np.all(np.abs(est.value - truth) < 1e-8)
