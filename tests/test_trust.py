"""Trust on code we did not write: each thing a new user saw go wrong, as a test. No false alarm
on right code, no hollow pass, no crash, a diagnosis that names the right kind and the right
side, and a contract that sees writes into the cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import handgrad
from handgrad import cli, discovery
from handgrad.cases import sample_cases
from handgrad.check import check_case
from tests import kinky
from tests.test_broken import LINEAR, backward, forward

# Three seeds here; the slow sweep (tests/test_sweep.py) runs these layers on many more.
SEEDS = range(3)


def _failures(record, seeds=SEEDS, cases=4):
    out = []
    for seed in seeds:
        report = handgrad.check(record, seed=seed, cases=cases, shrink=False)
        out += [f"seed {seed}: {r.case} {r.dtype} {r.check} {r.tensor} [{r.kind}] {r.message}"
                for r in report.failures]
    return out


# 1. Kinks: right piecewise-linear code passes every oracle on every seed, declared or not.

@pytest.mark.parametrize("layer", kinky.KINKY, ids=lambda r: r.name)
def test_right_piecewise_linear_code_passes_on_every_seed(layer):
    failures = _failures(layer)
    assert not failures, "\n".join(failures[:5])


@pytest.mark.parametrize("layer", kinky.KINKY[:1] + kinky.KINKY[5:7], ids=lambda r: r.name)
def test_declared_kinks_pass_too(layer):
    """With a declared kink distance the sampler keeps the point away from the kinks, and the
    Taylor steps still cross them: the kink test must keep them out of the fit."""
    if layer.name == "relu":
        declared = dataclasses.replace(layer, kink_distance=lambda x: float(np.abs(x).min()))
    else:
        def gap(cache):
            x, arg, k, s = cache
            windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
            top2 = np.sort(windows[:, :, ::s, ::s].reshape(-1, k * k), axis=1)[:, -2:]
            return float((top2[:, 1] - top2[:, 0]).min()) if k * k > 1 else 1.0
        declared = dataclasses.replace(layer, kink_distance=gap)
    failures = _failures(declared)
    assert not failures, "\n".join(failures[:5])


@pytest.mark.parametrize("layer", kinky.KINKY, ids=lambda r: r.name)
def test_the_taylor_test_alone_still_rejects_wrong_gradients_at_kinks(layer):
    """Kink handling must not blunt the Taylor test: a 1% error is still O(h)."""
    wrong = dataclasses.replace(layer, name=layer.name + "-1pc", backward=lambda d, c: {
        k: 1.01 * v for k, v in layer.backward(d, c).items()})
    verdicts = [r.status for seed in range(3) for r in handgrad.check(
        wrong, seed=seed, cases=4, checks=("taylor",), shrink=False).results
        if r.check == "taylor"]
    # The minimal case can have an all-zero gradient (a relu of negatives), which 1.01x keeps.
    assert verdicts.count("fail") >= len(verdicts) - 3, verdicts


def test_a_taylor_failure_contradicted_by_the_exact_oracles_is_not_a_verdict(monkeypatch):
    """Where autograd and finite differences find every gradient right at tight tolerance, a
    Taylor slope alone (a kink the test could not see) is reported unreliable, with why; a
    wrong gradient keeps its Taylor failure."""
    from handgrad.oracles import taylor as taylor_oracle
    from handgrad.oracles.numerics.taylor import TaylorResult

    def always_slope_one(*args, **kwargs):
        return TaylorResult("fail", 1.0, (), (), (), (), (), "remainder slope 1.00 (forced)")

    monkeypatch.setattr(taylor_oracle, "taylor_test", always_slope_one)
    case = sample_cases(LINEAR, 0, 2)[1]
    (row,) = [r for r in check_case(LINEAR, case) if r.check == "taylor"]
    assert row.status == "unreliable" and "not a verdict" in row.message
    wrong = dataclasses.replace(LINEAR, name="linear-2x", backward=lambda d, c: {
        k: 2 * v for k, v in backward(d, c).items()})
    (row,) = [r for r in check_case(wrong, case) if r.check == "taylor"]
    assert row.status == "fail"


# 2. Float64-only code: a warning, not a failure; real float64 failures name the report.

def float64_accumulating_backward(dout, cache):
    x, W = cache
    dx, dW = np.zeros(x.shape), np.zeros(W.shape)  # float64 whatever the input dtype
    dx += dout @ W.T
    dW += x.T @ dout
    return {"x": dx, "W": dW}


ACCUMULATING = dataclasses.replace(LINEAR, name="linear-float64-accumulators",
                                   backward=float64_accumulating_backward)


def test_float64_answers_to_float32_inputs_are_a_warning_not_a_failure():
    report = handgrad.check(ACCUMULATING, cases=3)
    assert report.passed, report.render(only_failures=True)
    warned = {r.kind for r in report.warnings}
    assert warned == {"dtype-promoted"}, report.warnings
    assert "float32 inputs gave float64" in report.warnings[0].message


def test_a_strict_record_fails_promotion_and_a_float64_only_record_skips_float32():
    strict = dataclasses.replace(ACCUMULATING, name="linear-strict", strict_dtype=True)
    assert handgrad.check(strict, cases=2, shrink=False).kind == "wrong-dtype"
    only64 = dataclasses.replace(ACCUMULATING, name="linear-float64-only",
                                 skip={"float32": "accumulates in float64, like the course code"})
    report = handgrad.check(only64, cases=2)
    assert report.passed and not report.warnings
    assert not [r for r in report.results if r.dtype == "float32"]
    skipped = [r for r in report.results if r.check == "float32"]
    assert skipped and all(r.status == "skipped" and "course code" in r.message for r in skipped)


def test_a_real_float64_failure_names_the_report_ahead_of_float32_dtype_problems():
    def buggy(dout, cache):
        grads = float64_accumulating_backward(dout, cache)
        return {**grads, "W": -grads["W"]}

    strict = dataclasses.replace(LINEAR, name="linear-strict-sign", backward=buggy,
                                 strict_dtype=True)
    report = handgrad.check(strict, cases=2, shrink=False)
    assert {r.kind for r in report.failures} >= {"sign", "wrong-dtype"}
    assert report.kind == "sign"


# 3. No crash: a reference that raises only in float64, inside autograd.grad.

class _Float64Fragile(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return w.clone()

    @staticmethod
    def backward(ctx, g):
        if g.dtype == torch.float64:
            raise RuntimeError("slow_conv2d: grad_weight must be contiguous")
        return g


def test_a_reference_raising_only_in_float64_is_an_error_result_not_a_crash(capsys,
                                                                            monkeypatch):
    fragile = dataclasses.replace(LINEAR, name="linear-fragile-reference",
                                  reference=lambda x, W: x @ _Float64Fragile.apply(W))
    report = handgrad.check(fragile, cases=2)
    errors = [r for r in report.failures if r.status == "error"]
    assert errors and {r.kind for r in errors} == {"reference-error"}
    assert {r.dtype for r in errors} == {"float64", "float32"}
    assert all("slow_conv2d" in r.message and "fix the PyTorch reference" in r.message
               for r in errors)
    # The CLI carries on with the other records, and reports each.
    monkeypatch.setattr(discovery, "discover_sources",
                        lambda paths: [("here", [fragile, LINEAR], [])])
    assert cli.main(["check", "--cases", "2", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert {r["derivation"] for r in rows} == {"linear-fragile-reference", "linear"}


@pytest.mark.parametrize("where", ["forward", "backward", "reference", "sampler",
                                   "kink_distance", "update", "derive"])
def test_any_exception_anywhere_becomes_a_result_naming_the_derivation(where):
    def boom(*args, **kwargs):
        raise ValueError(f"boom in {where}")

    changes = {"forward": {"forward": boom}, "backward": {"backward": boom},
               "reference": {"reference": boom},
               "sampler": {"samplers": {"x": boom}},
               "kink_distance": {"kink_distance": boom},
               "update": {"update": boom, "forward": lambda x, W: ((x @ W).sum(), (x, W)),
                          "backward": lambda d, c: {"x": d * c[1].sum(1) + 0 * c[0],
                                                    "W": d * np.outer(c[0].sum(0),
                                                                      np.ones(c[1].shape[1]))},
                          "reference": lambda x, W: (x @ W).sum()},
               "derive": {"derive": boom, "dims": {"N": (1, 3), "D": (1, 3)},
                          "inputs": {"x": ("N", "D"), "W": ("D", "K")}}}[where]
    record = dataclasses.replace(LINEAR, name=f"linear-raises-in-{where}", **changes)
    report = handgrad.check(record, cases=2)
    errors = [r for r in report.results if r.status == "error"]
    assert errors, report.render()
    assert all(r.derivation == record.name for r in errors)
    assert any(f"boom in {where}" in r.message for r in errors), [r.message for r in errors]


# 4. No hollow pass.

def test_a_gradient_zero_in_every_case_is_vacuous_unless_declared():
    unused = dataclasses.replace(
        LINEAR, name="linear-unused-bias", inputs={**LINEAR.inputs, "b": ("K",)},
        forward=lambda x, W, b: forward(x, W), reference=lambda x, W, b: x @ W,
        backward=lambda d, c: {**backward(d, c), "b": np.zeros(c[1].shape[1])})
    report = handgrad.check(unused, cases=3)
    assert report.status == "vacuous" and not report.passed and report.kind == "vacuous"
    (row,) = [r for r in report.results if r.status == "vacuous"]
    assert row.tensor == "b" and "zero_grads" in row.message
    declared = dataclasses.replace(unused, name="linear-unused-bias-declared",
                                   zero_grads={"b": "the forward never adds b"})
    assert handgrad.check(declared, cases=3).passed
    wrongly = dataclasses.replace(LINEAR, name="linear-declared-zero",
                                  zero_grads={"W": "it is not"})
    assert handgrad.check(wrongly, cases=2).kind == "declared-zero"


def test_one_case_is_never_the_degenerate_minimal_one():
    """One class makes every softmax cross-entropy gradient zero: a one-case check must not
    be that case."""
    report = handgrad.check("mlp-ce-tanh", cases=1)
    assert report.passed
    coverage = [r for r in report.results if r.check == "coverage"]
    assert coverage and all(r.live > 0 for r in coverage), coverage


def test_every_right_record_reports_coverage_per_tensor_in_json(capsys):
    assert cli.main(["check", "lenet5-relu", "--json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["check"] == "coverage"]
    record = handgrad.check.__globals__["find"]("lenet5-relu")
    assert {r["tensor"] for r in rows} == set(record.grad_keys)
    assert all(0 < r["live"] <= 1 for r in rows), rows


def test_lenet5_relu_exercises_every_layer_in_every_case():
    """Was: 59 of the 112 float64 gradient tensors of the 4 default cases identically zero
    (dead layers in the small random nets)."""
    report = handgrad.check("lenet5-relu", cases=4, checks=("contract", "autograd"))
    rows = [r for r in report.results if r.check == "autograd" and r.dtype == "float64"]
    dead = [f"{r.case} {r.tensor}" for r in rows if r.live == 0]
    assert report.passed and len(rows) == 112
    assert not dead, dead


# 5. Diagnoses.

def test_a_keepdims_bias_is_told_as_an_extra_axis_not_a_missing_reduction():
    def keepdims(dout, cache):
        x, W = cache
        return {"x": dout @ W.T, "W": x.T @ dout, "b": dout.sum(axis=0, keepdims=True)}

    record = dataclasses.replace(
        LINEAR, name="linear-keepdims-bias", inputs={**LINEAR.inputs, "b": ("K",)},
        forward=lambda x, W, b: (x @ W + b, (x, W)), reference=lambda x, W, b: x @ W + b,
        backward=keepdims)
    report = handgrad.check(record, cases=3, shrink=False)
    assert report.kind == "wrong-shape"
    message = report.kind_result.message
    assert "extra size-1 axis" in message and "reduction" not in message, message


def test_the_kind_comes_from_the_most_informative_case_not_a_size_one_case():
    """A per-channel scale whose gradient is summed to a scalar: at C = 1 that looks like a
    layout, at C >= 2 it is a missing axis; the report says the latter."""
    def forward_scale(x, w):
        return x * w, (x, w)

    def summed(dout, cache):
        x, w = cache
        return {"x": dout * w, "w": np.asarray((dout * x).sum())}

    record = handgrad.Derivation(name="channel-scale-summed", forward=forward_scale,
                                 backward=summed, reference=lambda x, w: x * w,
                                 inputs={"x": ("N", "C"), "w": ("C",)},
                                 dims={"N": (1, 4), "C": (1, 5)})
    report = handgrad.check(record, cases=4)
    first = report.kind_result
    assert first.dims["C"] >= 2, first
    assert "same values, wrong layout" not in first.message


def test_a_dropped_recurrent_gradient_is_read_at_t_above_one():
    report = handgrad.check("rnn-mutant-recurrent-term-dropped", cases=4)
    assert report.kind == "slices"
    assert report.kind_result.dims["T"] >= 2


def test_a_wrong_forward_shape_blames_the_forward_not_the_reference():
    record = dataclasses.replace(LINEAR, name="linear-forward-transposed",
                                 forward=lambda x, W: ((x @ W).T.copy(), (x, W)),
                                 backward=lambda d, c: backward(d.T, c))
    report = handgrad.check(record, cases=3, shrink=False)
    first = report.kind_result
    assert (first.check, first.kind) == ("forward", "wrong-shape"), first
    assert "fix the forward" in first.message and "transposed" in first.message
    declared = dataclasses.replace(LINEAR, name="linear-reference-wrong",
                                   reference=lambda x, W: (x @ W).T, output=("N", "K"))
    report = handgrad.check(declared, dims={"N": 2, "D": 3, "K": 4})
    assert report.kind == "reference-error" and "fix the reference" in report.failures[0].message


def test_shrinking_keeps_the_kind_or_stops():
    """One wrong entry, but at D = 1 the code also drops an axis: shrinking must not end on
    that shape failure."""
    def buggy(dout, cache):
        x, W = cache
        dW = x.T @ dout
        dW[-1, -1] += 10.0
        return {"x": dout @ W.T, "W": dW.ravel() if W.shape[0] == 1 else dW}

    record = dataclasses.replace(LINEAR, name="linear-entry-then-shape", backward=buggy,
                                 dims={"N": (1, 4), "D": (1, 6), "K": (4, 5)})
    report = handgrad.check(record, cases=4)
    assert report.kind == "entries"
    line = next(d for d in report.diagnoses if "smallest case" in d)
    assert "[entries]" in line and "D=1" not in line, line


def test_every_tied_position_is_a_subgradient_error_and_torch_ties_pass():
    right = kinky.pool(2, 2, name="maxpool-ties", samplers={"x": kinky.quantized})
    wrong = dataclasses.replace(right, name="maxpool-every-tie",
                                backward=kinky.maxpool_every_tie_backward)
    assert not _failures(right, seeds=range(4))
    report = handgrad.check(wrong, cases=4)
    assert report.kind == "subgradient", report.render(only_failures=True)
    assert "every tied input" in report.kind_result.message


def test_overlapping_pools_with_ties_pass():
    right = kinky.pool(3, 1, name="maxpool-3x3-ties", samplers={"x": kinky.quantized})
    failures = _failures(right, seeds=range(4))
    assert not failures, "\n".join(failures[:5])


def test_a_failing_descent_step_is_diagnosed_on_the_step():
    record = handgrad.check.__globals__["find"]("mlp-ce-tanh")
    ascent = dataclasses.replace(record, name="mlp-ascent", update=lambda p, g, lr: {
        k: p[k] + lr * g[k] for k in p})
    report = handgrad.check(ascent, cases=2, shrink=False)
    rows = [r for r in report.failures if r.check == "descent"]
    assert {r.kind for r in rows} == {"sign", "ascent"}, rows
    assert not any("best scalar fit: hand = 1 x" in r.message for r in rows)


def test_indices_print_as_plain_integers_and_reprs_are_short():
    def one_entry(dout, cache):
        grads = backward(dout, cache)
        grads["W"][0, 1] += 1.0
        return grads

    report = handgrad.check(dataclasses.replace(LINEAR, name="linear-one-entry",
                                                backward=one_entry,
                                                dims={"N": (1, 3), "D": (4, 6), "K": (4, 5)}),
                            cases=3)
    text = report.render()
    assert "np.int64" not in text and "entries wrong: [0, 1]" in text
    assert repr(LINEAR) == "Derivation('linear')"
    assert len(repr(report)) < 100


# 6. Contract: writes into the cache, the output or dout, whatever form the cache takes.

class Layer:
    """A class layer that keeps its cache in self."""

    def forward(self, x, W):
        self.x, self.W = x, W
        self.out = x @ W
        return self.out

    def backward(self, dout):
        return {"x": dout @ self.W.T, "W": self.x.T @ dout}


def _contract_kinds(forward_fn, backward_fn, name):
    record = dataclasses.replace(LINEAR, name=name, forward=forward_fn, backward=backward_fn)
    return {r.kind for r in handgrad.check(record, cases=2, shrink=False).failures}, record


def test_a_backward_that_writes_into_a_cached_intermediate_is_reported():
    def forward_h(x, W):
        h = x @ W
        return h * 2, {"two": np.full(h.shape[1], 2.0), "parts": [x, W]}

    def writes(dout, cache):
        x, W = cache["parts"]
        grads = {"x": (cache["two"] * dout) @ W.T, "W": x.T @ (cache["two"] * dout)}
        cache["two"] *= 0.0  # reuses the cached buffer: a second backward gets zeros
        return grads

    record = dataclasses.replace(LINEAR, name="linear-writes-cache", forward=forward_h,
                                 backward=writes, reference=lambda x, W: 2 * x @ W)
    kinds = {r.kind for r in handgrad.check(record, cases=2, shrink=False).failures}
    assert kinds == {"mutated-cache"}


def test_a_backward_that_writes_into_the_forward_output_is_not_a_forward_error():
    def forward_out(x, W):
        out = x @ W
        return out, (x, W, out)

    def writes(dout, cache):
        x, W, out = cache
        out *= 2.0
        return {"x": dout @ W.T, "W": x.T @ dout}

    kinds, _ = _contract_kinds(forward_out, writes, "linear-writes-output")
    assert kinds == {"mutated-cache"}


def test_a_class_layer_whose_backward_writes_into_self_is_reported():
    def forward_layer(x, W):
        layer = Layer()
        return layer.forward(x, W), layer

    def writes(dout, layer):
        grads = layer.backward(dout)
        layer.x[...] = 0.0
        return grads

    kinds, _ = _contract_kinds(forward_layer, writes, "layer-writes-self")
    assert "mutated-cache" in kinds or "mutated-input" in kinds


@pytest.mark.parametrize("view", [True, False])
def test_writes_into_dout_are_caught_view_or_copy(view):
    def writes(dout, cache):
        x, W = cache
        target = dout.reshape(-1) if view else dout
        target[0] = 0.0
        return {"x": dout @ W.T, "W": x.T @ dout}

    kinds, _ = _contract_kinds(forward, writes, f"linear-writes-dout-{view}")
    assert "mutated-upstream" in kinds


# 7. expect_kind is enforced.

def test_a_rejection_with_another_kind_is_not_as_expected():
    flipped = dataclasses.replace(LINEAR, name="linear-flipped", backward=lambda d, c: {
        k: -v for k, v in backward(d, c).items()}, expect="reject", erratum="a flipped sign",
        expect_kind="factor")
    report = handgrad.check(flipped, cases=2, shrink=False)
    assert report.rejected and report.kind == "sign" and not report.as_expected
    assert "expected" in report.render() and "'factor'" in report.render()
