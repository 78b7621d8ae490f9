"""Messages that point at the cause, on code written as course assignments and from-scratch
libraries write it: each mistake a new user met, and the message it must get."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

import handgrad
from handgrad import adapt
from handgrad.compare import compare
from tests.corpus import reference as ref


def softmax_loss_eps(x, y):
    """Course softmax loss with an eps inside the log; its gradient is the exact one."""
    shifted = x - x.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    N = x.shape[0]
    loss = -np.sum(np.log(probs[np.arange(N), y] + 1e-5)) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    return loss, dx / N


SOFTMAX = {"shapes": "x: N C, y: N", "labels": {"y": "C"},
           "dims": {"N": (2, 5), "C": (2, 6)}, "reference": ref.softmax_loss}


def test_a_scalar_loss_off_by_an_eps_is_one_value_off_not_a_factor():
    record = adapt.loss("softmax-loss-eps-in-log", softmax_loss_eps, **SOFTMAX)
    report = handgrad.check(record, cases=3, shrink=False)
    rows = [r for r in report.failures if r.check == "forward"]
    assert rows and {r.kind for r in rows} == {"value"}, report.render(only_failures=True)
    assert report.kind == "value"
    message = report.kind_result.message
    assert "too few digits" not in message and "single value" in message, message
    assert "eps inside a log" in message


def sqrt_forward(x):
    out = np.sqrt(x)
    return out, (x, out)


def sqrt_backward(dout, cache):
    x, out = cache
    return dout * 0.5 / out


def _one_entry_near_zero(rng, shape, dims):
    x = rng.uniform(0.5, 1.5, shape)
    x.flat[0] = 1e-5  # finite differences step across 0, where sqrt is NaN
    return x


def test_a_forward_that_is_nan_near_the_point_is_non_finite_not_a_fit():
    """Was: FAIL [entries] "only 0 of 12 entries wrong", max rel 0.00e+00."""
    record = adapt.pair("sqrt-near-zero", sqrt_forward, sqrt_backward, shapes="x: N D",
                        dims={"N": (2, 4), "D": (2, 5)}, reference=torch.sqrt,
                        samplers={"x": _one_entry_near_zero})
    with np.errstate(all="ignore"):
        report = handgrad.check(record, cases=2, shrink=False)
    assert report.kind == "non-finite", report.render(only_failures=True)
    assert "NaN or inf" in report.kind_result.message
    assert report.kind_result.max_rel == np.inf


def leaky_relu_forward(x):
    out = np.where(x > 0, x, 0.1 * x)  # the assignment asks for slope 0.01
    return out, x


def leaky_relu_backward(dout, x):
    return dout * np.where(x > 0, 1.0, 0.1)


def test_a_backward_right_for_a_wrong_forward_blames_the_forward():
    """Was: "first wrong: dL/dx", sending the user to a backward that is right."""
    record = adapt.pair("leaky-relu-slope", leaky_relu_forward, leaky_relu_backward,
                        shapes="x: N D", dims={"N": (2, 4), "D": (2, 5)},
                        reference=lambda x: F.leaky_relu(x, 0.01))
    report = handgrad.check(record, cases=2, shrink=False)
    text = "\n".join(report.diagnoses)
    assert "the forward disagrees with the reference" in text, text
    assert "first wrong" not in text


def max_pool_forward_stride_2(x, pool_param):
    """Pools with stride 2 whatever pool_param says; x: (N, C, H, W)."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, (H - 2) // 2 + 1, (W - 2) // 2 + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    s = pool_param["stride"]
    N, C, H, W = x.shape
    dx = np.zeros_like(x)
    for i in range((H - 2) // s + 1):
        for j in range((W - 2) // s + 1):
            window = x[:, :, i * s:i * s + 2, j * s:j * s + 2]
            mask = window == window.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * s:i * s + 2, j * s:j * s + 2] += mask * dout[:, :, i, j][:, :, None, None]
    return dx


def test_a_backward_exception_caused_by_the_forward_shape_names_the_shape():
    """Was: FAIL [exception] "backward raised IndexError: index 2 is out of bounds"."""
    record = adapt.pair("max-pool-stride-ignored", max_pool_forward_stride_2, max_pool_backward,
                        shapes="x: N C H W", args=({"stride": 1},),
                        dims={"N": (1, 2), "C": (1, 2), "H": (4, 4), "W": (4, 4)},
                        reference=lambda x: ref.max_pool(x, 2, 1))
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.kind == "wrong-shape", report.render(only_failures=True)
    message = report.kind_result.message
    assert "2, 2) where the reference returns" in message and "3, 3)" in message, message
    assert "fix the forward's output shape" in message
    assert "IndexError" in message


def test_the_relative_error_of_a_failure_against_an_exact_zero_is_unbounded():
    """Was: max rel 0.00e+00 next to FAIL [nonzero-where-zero]."""
    assert compare(np.array([0.0, 1e-3]), np.zeros(2), 1e-9, 1e-11).max_rel == np.inf
    assert compare(np.zeros(2), np.zeros(2), 1e-9, 1e-11).max_rel == 0.0
    from tests.test_broken import LINEAR, backward, forward
    unused = dataclasses.replace(
        LINEAR, name="linear-unused-bias", inputs={**LINEAR.inputs, "b": ("K",)},
        forward=lambda x, W, b: forward(x, W), reference=lambda x, W, b: x @ W,
        backward=lambda d, c: {**backward(d, c), "b": d.sum(axis=0)})
    report = handgrad.check(unused, cases=2, shrink=False)
    rows = [r for r in report.failures if r.tensor == "b" and r.check == "autograd"]
    assert rows and all(r.max_rel == np.inf for r in rows)
    assert " inf " in report.render(only_failures=True)


def tanh_cell_forward(x, prev_c):
    next_c = prev_c + x
    next_h = np.tanh(next_c)
    return next_h, next_c, (next_h,)


def tanh_cell_backward(dnext_h, dnext_c, cache):
    (next_h,) = cache
    dnext_c += dnext_h * (1 - next_h ** 2)  # the classic in-place accumulation
    return dnext_c, dnext_c


def test_mutated_upstream_names_the_upstream_gradient_that_was_written():
    record = adapt.pair("tanh-cell-dnext-c-in-place", tanh_cell_forward, tanh_cell_backward,
                        shapes="x: N H, prev_c: N H", outputs="next_h: N H, next_c: N H",
                        dims={"N": (2, 3), "H": (2, 4)},
                        reference=lambda x, prev_c: (torch.tanh(prev_c + x), prev_c + x))
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.kind == "mutated-upstream"
    message = report.kind_result.message
    assert "dnext_c" in message and "dnext_h (" not in message, message


def affine_forward_no_bias(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w  # b is never added
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def test_a_forward_that_never_adds_its_bias_is_an_offset_per_column():
    """Was: FAIL [values] "no simple pattern"."""
    record = adapt.pair("affine-bias-not-added", affine_forward_no_bias, affine_backward,
                        shapes="x: N D, w: D M, b: M", dims={"N": (2, 4), "D": (2, 5),
                                                             "M": (2, 4)},
                        reference=ref.affine)
    report = handgrad.check(record, cases=2, shrink=False)
    rows = [r for r in report.failures if r.check == "forward" and r.dtype == "float64"]
    assert rows and {r.kind for r in rows} == {"offset"}, report.render(only_failures=True)
    assert "per entry of axis 1" in rows[0].message and "bias" in rows[0].message


def lstm_first_step(x, Wf, Wi, Wg):
    """One LSTM cell step from a zero cell: c = f * c0 + i * g with c0 = 0 (T = 1)."""
    c0 = np.zeros((x.shape[0], Wf.shape[1]))
    f = 1 / (1 + np.exp(-x @ Wf))
    i = 1 / (1 + np.exp(-x @ Wi))
    g = np.tanh(x @ Wg)
    c = f * c0 + i * g
    return c, (x, Wf, Wi, Wg, f, i, g, c0)


def lstm_first_step_backward(dc, cache):
    x, Wf, Wi, Wg, f, i, g, c0 = cache
    df = dc * c0
    di = dc * g
    dg = dc * i
    daf, dai, dag = df * f * (1 - f), di * i * (1 - i), dg * (1 - g ** 2)
    dx = daf @ Wf.T + dai @ Wi.T + dag @ Wg.T
    return dx, x.T @ daf, x.T @ dai, x.T @ dag


def _lstm_reference(x, Wf, Wi, Wg):
    return torch.sigmoid(x @ Wf) * 0 + torch.sigmoid(x @ Wi) * torch.tanh(x @ Wg)


def test_a_structural_zero_gets_the_zero_grads_advice_not_more_classes():
    record = adapt.pair("lstm-first-step", lstm_first_step, lstm_first_step_backward,
                        shapes="x: N D, Wf: D H, Wi: D H, Wg: D H",
                        dims={"N": (2, 3), "D": (2, 4), "H": (2, 4)}, reference=_lstm_reference)
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.status == "vacuous"
    (row,) = [r for r in report.results if r.status == "vacuous"]
    assert row.tensor == "Wf" and "structural" in row.message, row.message
    assert "zero_grads={'Wf'" in row.message and "more classes" not in row.message


def test_a_bias_gradient_with_a_spare_axis_gets_a_reduction_or_size_one_hint():
    from tests.corpus import BY_NAME

    per_position = handgrad.check(BY_NAME["conv-class-bias-per-position"], cases=2,
                                  shrink=False)
    assert per_position.kind == "wrong-shape"
    assert "reduction over axes" in per_position.kind_result.message, \
        per_position.kind_result.message
    keepdims = handgrad.check(BY_NAME["linear-class-db-keepdims"], cases=2, shrink=False)
    assert keepdims.kind == "wrong-shape"
    assert "extra size-1 axis" in keepdims.kind_result.message


def test_a_backward_of_the_wrong_shape_is_never_blamed_on_the_forward():
    from tests.corpus import BY_NAME

    report = handgrad.check(BY_NAME["conv-class-bias-per-position"], cases=2, shrink=False)
    text = "\n".join(report.diagnoses)
    assert "forward disagrees" not in text and "first wrong: dL/db" in text, text
