"""Scale decides no verdict: an entry below what finite differences (or the Taylor test) resolve
is undecidable by them, never evidence of a wrong gradient, and the other oracles decide; at any
scale where they resolve, a wrong gradient is still rejected with its kind.

The records: a numerically stable softmax loss on logits spread over +-1000 (at some seeds every
entry of the right gradient is about 1e-76 and the loss rounds to exactly 0.0), a linear layer
at 1e-150 and at 1e+15 (no reference: the numeric oracles alone must decide, and resolve),
and a weight that never reaches the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

import handgrad
from handgrad import adapt

# At these seeds the minimal case (N = 1, C = 2) puts the label on the larger logit: the
# gradient is about 1e-76 everywhere and the float64 loss exactly 0.0. Before the finite
# differences knew their resolution, 14 of seeds 0..29 failed [nonzero-where-zero].
TINY_SEEDS = (4, 7)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = x.shape[0]
    loss = -logp[np.arange(N), y].mean()
    dx = np.exp(logp)
    dx[np.arange(N), y] -= 1
    return loss, dx / N


def softmax_loss_sign(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, -dx


def _wide(rng, shape, dims):
    return rng.uniform(-1000.0, 1000.0, shape)


def wide_softmax(fn, name):
    return adapt.loss(name, fn, shapes="x: N C, y: N", labels={"y": "C"},
                      samplers={"x": _wide}, dims={"N": (1, 5), "C": (2, 5)},
                      reference=lambda x, y: F.cross_entropy(x, y))


RIGHT = wide_softmax(softmax_loss, "softmax-wide")
SIGN = wide_softmax(softmax_loss_sign, "softmax-wide-sign")


def _rows(report, check):
    return [r for r in report.results if r.check == check and r.case.startswith("C=2,N=1")]


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_entries_below_fd_resolution_are_undecidable_not_wrong(seed):
    report = handgrad.check(RIGHT, seed=seed, shrink=False)
    assert report.passed, report.render(only_failures=True)
    fd_row, = _rows(report, "fd")
    assert fd_row.status == "unreliable", fd_row
    assert "below what finite differences resolve" in fd_row.message
    assert abs(fd_row.hand_value) < 1e-60  # the case is the tiny one
    taylor_row, = _rows(report, "taylor")
    assert taylor_row.status == "unreliable", taylor_row
    assert all(r.status == "pass" for r in _rows(report, "autograd"))


@pytest.mark.parametrize("seed", TINY_SEEDS)
def test_a_wrong_gradient_below_fd_resolution_is_still_rejected_by_autograd(seed):
    report = handgrad.check(SIGN, seed=seed, shrink=False)
    assert not report.passed
    tiny = [r for r in _rows(report, "autograd") if r.dtype == "float64"]
    assert tiny and tiny[0].status == "fail" and tiny[0].kind == "sign", tiny


@pytest.mark.slow
def test_wide_softmax_passes_at_30_seeds_and_its_sign_flip_fails_at_each():
    for seed in range(30):
        report = handgrad.check(RIGHT, seed=seed, shrink=False)
        assert report.passed, f"seed {seed}\n" + report.render(only_failures=True)
        wrong = handgrad.check(SIGN, seed=seed, shrink=False)
        assert not wrong.passed and wrong.kind == "sign", f"seed {seed}: {wrong.kind}"


def linear_forward(x, W):
    return x @ W, (x, W)


def linear_backward(dout, cache):
    x, W = cache
    return dout @ W.T, x.T @ dout


def linear_backward_twice(dout, cache):
    dx, dW = linear_backward(dout, cache)
    return dx, 2 * dW


def _scaled(scale):
    return lambda rng, shape, dims: scale * rng.uniform(-1.0, 1.0, shape)


def scaled_linear(backward, scale, name):
    return adapt.pair(name, linear_forward, backward, shapes="x: N D, W: D M",
                      samplers={"x": _scaled(scale), "W": _scaled(scale)},
                      dims={"N": (2, 3), "D": (2, 4), "M": (2, 3)}, complex_step=True)


def test_a_linear_layer_at_1e15_is_resolved_by_the_numeric_oracles_right_and_wrong():
    """No reference: finite differences, the complex step and the Taylor test alone judge a
    gradient of 1e+15, and resolve it: the right one passes, a factor 2 is a factor."""
    right = handgrad.check(scaled_linear(linear_backward, 1e15, "linear"), cases=2,
                           shrink=False)
    assert right.passed, right.render(only_failures=True)
    for check in ("fd", "complex-step", "taylor", "coverage"):
        rows = [r for r in right.results if r.check == check]
        assert rows and all(r.status == "pass" for r in rows), (check, rows)
    wrong = handgrad.check(scaled_linear(linear_backward_twice, 1e15, "linear-2dW"), cases=2,
                           shrink=False)
    fd_rows = [r for r in wrong.failures if r.check == "fd" and r.tensor == "W"]
    assert fd_rows and fd_rows[0].kind == "factor", wrong.render(only_failures=True)
    assert "(2) x reference" in fd_rows[0].message


def test_a_linear_layer_at_1e_150_is_below_fd_resolution_and_the_complex_step_decides():
    """Finite differences step by at least 1.8e-4 (a kink margin, not the input's scale), so a
    gradient of 1e-150 lies below the rounding they resolve: unreliable, and so is coverage
    (before: VACUOUS, "identically zero in all cases"). The complex step, exact at any scale,
    passes the right gradient and rejects a factor 2."""
    right = handgrad.check(scaled_linear(linear_backward, 1e-150, "linear"), cases=2,
                           shrink=False)
    assert right.passed and right.status != "vacuous", right.render(only_failures=True)
    assert {r.status for r in right.results if r.check == "fd"} == {"unreliable"}
    assert {r.status for r in right.results if r.check == "coverage"} == {"unreliable"}
    assert {r.status for r in right.results if r.check == "complex-step"} == {"pass"}
    wrong = handgrad.check(scaled_linear(linear_backward_twice, 1e-150, "linear-2dW"), cases=2,
                           shrink=False)
    rows = [r for r in wrong.failures if r.check == "complex-step" and r.tensor == "W"]
    assert rows and rows[0].kind == "factor", wrong.render(only_failures=True)


def unused_forward(x, w):
    return np.tanh(x), x


def unused_backward(dout, cache):
    x = cache
    return dout * (1 - np.tanh(x) ** 2), np.ones(3)


def test_a_gradient_for_a_weight_that_never_reaches_the_loss_is_rejected_by_fd():
    """The flip side: where the loss does not move at all, finite differences still resolve an
    O(1) hand value, and say what an exact zero means for them."""
    record = adapt.pair("unused-weight", unused_forward, unused_backward, shapes="x: N, w: 3",
                        dims={"N": (2, 4)})
    report = handgrad.check(record, cases=2, shrink=False)
    rows = [r for r in report.failures if r.check == "fd" and r.tensor == "w"]
    assert rows and rows[0].kind == "nonzero-where-zero", report.render(only_failures=True)
    assert "leaves the loss unchanged to the last bit" in rows[0].message
    assert "does not reach" not in rows[0].message
