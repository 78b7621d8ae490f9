"""Custom autograd Functions as records (``adapt.function``): the right ones of the corpus pass
every oracle, the wrong ones are rejected with the kind of their mistake, including the mistakes
``torch.autograd.gradcheck`` does not see; the command line shows them like any record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import handgrad
from handgrad import adapt, cli, discovery
from handgrad.adapt.functions import DEVICE_VARIABLE, function_of
from tests import corpus_functions as corpus

CASES = 2
BY_NAME = {r.name: r for r in corpus.RIGHT + corpus.WRONG}


def failures(report: handgrad.Report) -> str:
    return "\n".join(f"{r.case} {r.dtype} {r.check} {r.tensor}: {r.kind} {r.message[:200]}"
                     for r in report.failures)


@pytest.mark.parametrize("right", corpus.RIGHT, ids=lambda r: r.name)
def test_right_function_passes_every_oracle_in_every_dtype(right):
    report = handgrad.check(right, cases=CASES, shrink=False)
    assert report.passed, failures(report)
    dtypes = {r.dtype for r in report.results if r.check == "autograd" and r.status == "pass"}
    assert {"float64", "float32", *function_of(right).low_precision} <= dtypes


@pytest.mark.parametrize("wrong", corpus.WRONG, ids=lambda r: r.name)
def test_wrong_function_is_rejected_with_its_kind(wrong):
    report = handgrad.check(wrong, cases=CASES, shrink=False)
    assert report.rejected and report.kind == wrong.expect_kind, failures(report)


# The mistakes of the corpus that gradcheck passes (measured here, so the claim stays true with
# the torch installed): each is rejected by the test above. fn-scales-saved is left out: torch's
# own version counter makes gradcheck raise on it.
GRADCHECK_BLIND = {
    "fn-viewed-upstream": lambda d: (d(2, 3, 4), d(4, 3)),
    "fn-doubles-upstream": lambda d: (d(2, 3),),
    "fn-frozen-weight": lambda d: (d(2, 3), d(2, 3)),
    "fn-saves-intermediate": lambda d: (d(2, 3),),
}


@pytest.mark.parametrize("name", GRADCHECK_BLIND)
def test_gradcheck_passes_what_handgrad_rejects(name):
    generator = torch.Generator().manual_seed(0)

    def draw(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=generator,
                           requires_grad=True)

    function = function_of(BY_NAME[name]).function
    assert gradcheck(function.apply, GRADCHECK_BLIND[name](draw))


def test_once_differentiable_has_no_hvp_and_says_why():
    record = BY_NAME["fn-softplus"]
    assert record.hvp is None
    report = handgrad.check(record, cases=1, shrink=False)
    skipped = [r for r in report.results if r.check == "double-backward"]
    assert skipped and all(r.status == "skipped" and "once_differentiable" in r.message
                           for r in skipped)


def test_jvp_and_double_backward_reach_the_linearisation_checks():
    gelu = BY_NAME["fn-gelu"]
    assert gelu.jvp is not None and gelu.hvp is not None
    report = handgrad.check(gelu, cases=1, shrink=False)
    checked = {r.check for r in report.results if r.status == "pass"}
    assert {"jvp", "dot-product", "hvp", "symmetry", "layout"} <= checked


def test_non_differentiable_inputs_reach_the_function_without_requires_grad():
    info = function_of(BY_NAME["fn-masked-affine"])
    rng = np.random.default_rng(0)
    inputs = {"x": rng.uniform(size=(2, 3)), "W": rng.uniform(size=(3, 2)),
              "b": rng.uniform(size=2), "mask": np.ones((2, 2))}
    before = {k: v.copy() for k, v in inputs.items()}
    tensors = info.tensors(inputs)
    assert [tensors[k].requires_grad for k in inputs] == [True, True, True, False]
    out = info.apply(tensors)[0]
    assert out.grad_fn.needs_input_grad == (True, True, True, False)
    assert all(np.array_equal(before[k], inputs[k]) for k in inputs)


def test_device_without_cuda_is_a_skipped_row_not_a_pass(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the device checks run (see the next test)")
    monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
    report = handgrad.check(BY_NAME["fn-gelu"], cases=1, shrink=False)
    rows = [r for r in report.results if r.tensor == "(device)"]
    assert rows and rows[0].status == "skipped" and "is_available" in rows[0].message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["fn-gelu", "fn-masked-affine", "fn-sign"])
def test_device_checks_run_every_dtype_on_cuda(monkeypatch, name):
    monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
    checked = BY_NAME[name]
    report = handgrad.check(checked, cases=1, shrink=False)
    on_device = {r.dtype for r in report.results if r.dtype.endswith("@cuda")}
    assert on_device == {f"{d}@cuda" for d in ("float64", "float32", "float16", "bfloat16")}
    wrong = [r for r in report.failures if r.dtype.endswith("@cuda")]
    assert bool(wrong) == (checked.expect == "reject"), failures(report)


def test_terminal_line_and_json_for_function_records(monkeypatch, capsys):
    records = [BY_NAME["fn-gelu"], BY_NAME["fn-viewed-upstream"]]
    monkeypatch.setattr(discovery, "discover_sources", lambda paths: [("here", records, [])])
    assert cli.main(["check", "--cases", "1"]) == 0
    out = capsys.readouterr().out
    assert "fn-viewed-upstream" in out and "rejected [upstream-layout]" in out
    cli.main(["check", "--cases", "1", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert any(r["check"] == "layout" and r["kind"] == "upstream-layout" for r in rows)
    assert any(r["dtype"] == "bfloat16" for r in rows)


class _Plain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3.0

    @staticmethod
    def backward(ctx, g):
        return 3.0 * g


def test_adapter_errors_name_the_derivation_and_the_fix():
    with pytest.raises(handgrad.DerivationError, match="'f'.*Function subclass"):
        adapt.function("f", lambda x: x, shapes="x: N", dims={"N": (1, 2)})
    with pytest.raises(handgrad.DerivationError, match="nondiff_outputs needs outputs="):
        adapt.function("f", _Plain, shapes="x: N", dims={"N": (1, 2)}, nondiff_outputs=(1,))
    with pytest.raises(handgrad.DerivationError, match="saved names tensors"):
        adapt.function("f", _Plain, shapes="x: N", dims={"N": (1, 2)}, saved={"y": 0})


def test_float16_and_bfloat16_rows_reject_a_wrong_backward():
    """The low-precision tolerance (4 ulps plus 10 times the reference's own error) still
    rejects a sign error in both dtypes: it is not a hollow pass."""
    report = handgrad.check(BY_NAME["fn-sign"], cases=1, shrink=False)
    assert {"float16", "bfloat16"} <= {r.dtype for r in report.failures if r.check == "autograd"}


class _Normalise(torch.autograd.Function):
    """exp(x) / (row sum), saving the exponentials s and the result p."""

    @staticmethod
    def forward(ctx, x):
        s = x.exp()
        p = s / s.sum(dim=1, keepdim=True)
        ctx.save_for_backward(s, p)
        return p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        s, p = ctx.saved_tensors
        return p * (g - (g * p).sum(dim=1, keepdim=True))


class _ShiftedNormalise(_Normalise):
    """The exponentials shifted by a wrong 0.1."""

    @staticmethod
    def forward(ctx, x):
        s = x.exp() + 0.1
        p = s / s.sum(dim=1, keepdim=True)
        ctx.save_for_backward(s, p)
        return p


def _normalise_reference(x):
    s = x.exp()
    p = s / s.sum(dim=1, keepdim=True)
    return p, {"s": s, "p": p}


@pytest.mark.parametrize("function_class", [_Normalise, _ShiftedNormalise])
def test_saved_tensors_named_localise_a_wrong_forward(function_class):
    record = adapt.function("normalise", function_class, shapes="x: N D",
                            dims={"N": (1, 3), "D": (2, 4)}, saved={"s": 0, "p": 1},
                            reference=_normalise_reference)
    report = handgrad.check(record, cases=1, shrink=False)
    saved = {r.tensor: r.status for r in report.results if r.check == "saved"}
    if function_class is _Normalise:
        assert report.passed and saved == {"s": "pass", "p": "pass"}, failures(report)
    else:
        assert saved["s"] == "fail" and not report.passed
