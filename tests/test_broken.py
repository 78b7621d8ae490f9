"""Broken derivations get a clear error naming the derivation, the input and the fix; they
never take the others down and never change the caller's arrays."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import handgrad
from handgrad import cli
from handgrad.discovery import discover


def forward(x, W):
    return x @ W, (x, W)


def backward(dout, cache):
    x, W = cache
    return {"x": dout @ W.T, "W": x.T @ dout}


LINEAR = handgrad.Derivation(
    name="linear", forward=forward, backward=backward, reference=lambda x, W: x @ W,
    inputs={"x": ("N", "D"), "W": ("D", "K")}, dims={"N": (1, 4), "D": (1, 5), "K": (1, 3)})


def with_backward(name, fn):
    return dataclasses.replace(LINEAR, name=f"linear-{name}", backward=fn)


def test_a_record_built_on_the_spot_passes():
    assert handgrad.check(LINEAR, cases=3).passed


BROKEN = {
    "missing-key": (lambda d, c: {"x": backward(d, c)["x"]}, "W", "add grads['W']"),
    "extra-key": (lambda d, c: {**backward(d, c), "b": np.zeros(2)}, "b", "remove it"),
    "wrong-shape": (lambda d, c: {**backward(d, c), "W": backward(d, c)["W"].T.copy()}, "W",
                    "transposed"),
    "wrong-dtype": (lambda d, c: {k: v.astype(np.float16) for k, v in backward(d, c).items()},
                    "W", "keep the input dtype"),
    "non-finite": (lambda d, c: {**backward(d, c), "x": backward(d, c)["x"] / 0.0}, "x",
                   "NaN or inf"),
    "exception": (lambda d, c: 1 / 0, "(backward)", "ZeroDivisionError"),
    "not-a-dict": (lambda d, c: tuple(backward(d, c).values()), "(backward)",
                   "return a dict keyed by input name"),
    "mutated-upstream": (lambda d, c: (d.__imul__(2), backward(d, c))[1], "(upstream)",
                         "compute into a new array"),
    "mutated-input": (lambda d, c: (c[0].__imul__(2), backward(d, c))[1], "x", "copy it"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_backward_gets_a_clear_error(kind):
    fn, tensor, fix = BROKEN[kind]
    record = with_backward(kind, fn)
    with np.errstate(all="ignore"):
        report = handgrad.check(record, cases=2, shrink=False)
    hits = [r for r in report.failures if r.kind == kind]
    assert hits, report.render(only_failures=True)
    assert all(r.derivation == record.name for r in hits)
    text = " ".join(f"{r.tensor} {r.message}" for r in hits)
    assert tensor in text and fix in text, text


def test_forward_that_mutates_its_inputs_is_named_and_the_callers_arrays_survive():
    shared = np.ones((2, 3))

    def mutating_forward(x, W):
        x *= 2.0
        return forward(x, W)

    record = dataclasses.replace(LINEAR, name="linear-mutating", forward=mutating_forward,
                                 samplers={"x": lambda rng, shape, dims: shared},
                                 dims={"N": (2, 2), "D": (3, 3), "K": (1, 3)})
    report = handgrad.check(record, cases=2, shrink=False)
    hits = [r for r in report.failures if r.kind == "mutated-input"]
    assert hits and "forward wrote into input 'x'" in hits[0].message
    assert np.array_equal(shared, np.ones((2, 3))), "the engine let a forward write into a " \
                                                    "caller's array"


def test_an_update_rule_on_a_layer_is_checked_on_sum_dout_out():
    """A layer with a tensor output and an update rule: the step is SGD on sum(dout * out)."""
    right = dataclasses.replace(LINEAR, name="linear-update",
                                update=lambda p, g, lr: {k: p[k] - lr * g[k] for k in p})
    report = handgrad.check(right, cases=2)
    assert report.passed and any(r.check == "descent" for r in report.results)
    climbs = dataclasses.replace(right, name="linear-update-climbs",
                                 update=lambda p, g, lr: {k: p[k] + lr * g[k] for k in p})
    kinds = {r.kind for r in handgrad.check(climbs, cases=2, shrink=False).failures}
    assert kinds == {"sign", "ascent"}


def test_broken_sampler_and_reference_are_results_not_crashes():
    bad_sampler = dataclasses.replace(LINEAR, name="linear-sampler",
                                      samplers={"x": lambda rng, shape, dims: 1 / 0})
    bad_reference = dataclasses.replace(LINEAR, name="linear-ref",
                                        reference=lambda x, W: x @ W.T @ W.T)
    for record, where in ((bad_sampler, "sampling inputs"), (bad_reference, "PyTorch reference")):
        report = handgrad.check(record, cases=2, shrink=False)
        assert not report.passed
        assert any(where in r.message for r in report.failures), report.render()


@pytest.mark.parametrize("change, message", [
    ({"dims": {"N": (1, 4)}}, "have no range in dims"),
    ({"nondiff": {"y"}}, "not inputs"),
    ({"tags": {"b": "X1"}}, "neither differentiable inputs nor intermediates"),
    ({"expect": "reject"}, "must say in erratum"),
    ({"intermediates": ("x",)}, "share a name with an input"),
])
def test_malformed_record_is_refused_with_the_fix(change, message):
    with pytest.raises(handgrad.DerivationError, match=message) as info:
        dataclasses.replace(LINEAR, **change)
    assert "'linear'" in str(info.value)


def test_a_broken_module_does_not_hide_the_others(tmp_path):
    folder = tmp_path / "somederivs"
    folder.mkdir()
    (folder / "good.py").write_text(textwrap.dedent("""
        import dataclasses
        from tests import test_broken
        RECORD = dataclasses.replace(test_broken.LINEAR, name="good-one")
    """))
    (folder / "bad.py").write_text("raise RuntimeError('half-written derivation')\n")
    (folder / "malformed.py").write_text(textwrap.dedent("""
        import dataclasses
        from tests import test_broken
        RECORD = dataclasses.replace(test_broken.LINEAR, name="bad-one", nondiff={"nope"})
    """))
    records, broken = discover([folder])
    assert [r.name for r in records] == ["good-one"]
    assert records[0].origin == str(folder / "good.py")
    messages = {Path(b.module).name: b.message for b in broken}
    assert "half-written derivation" in messages["bad.py"]
    assert "nondiff names ['nope']" in messages["malformed.py"]


def test_cli_json_has_the_documented_fields_and_exit_status(capsys):
    assert cli.main(["check", "mlp-ce-tanh", "--cases", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"derivation", "case", "check", "passed", "kind", "tensor"} <= set(rows[0])
    assert {r["derivation"] for r in rows} == {"mlp-ce-tanh"}
    assert cli.main(["check", "no-such-derivation"]) == 1
    assert "no derivation matches 'no-such-derivation'" in capsys.readouterr().err


def test_cli_reproduces_one_case_from_its_printed_command(capsys):
    report = handgrad.check("mlp-ce-relu", seed=3, cases=3)
    case = report.results[-1]
    assert cli.main(["check", "mlp-ce-relu", "--dims", case.case, "--data-seed",
                     str(case.data_seed), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["case"], r["data_seed"]) for r in rows} == {(case.case, case.data_seed)}


def test_gradient_for_an_input_the_forward_never_uses_is_named():
    """An input that never reaches the loss has an exactly zero gradient; a hand value is not."""
    record = dataclasses.replace(
        LINEAR, name="linear-unused-bias", inputs={**LINEAR.inputs, "b": ("K",)},
        forward=lambda x, W, b: forward(x, W),
        backward=lambda d, c: {**backward(d, c), "b": d.sum(axis=0)},
        reference=lambda x, W, b: x @ W)
    report = handgrad.check(record, cases=2, shrink=False)
    hits = [r for r in report.failures if r.tensor == "b" and r.check == "autograd"]
    assert hits and {r.kind for r in hits} == {"nonzero-where-zero"}, report.render()
