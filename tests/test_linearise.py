"""The checks of hand JVPs and HVPs on small records written here in other people's styles
(tests/linear_records.py): right ones pass every check, wrong ones are rejected with their kind,
and the identities that need no reference catch what they exist for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import handgrad
from handgrad import adapt
from handgrad.cases import Case, sample_cases
from handgrad.check import check_case
from handgrad.record import DerivationError
from tests import linear_records as L

JVP_CHECKS = {"jvp", "jvp-fd", "dot-product", "linearity"}
HVP_CHECKS = {"hvp", "hvp-fd", "symmetry", "linearity", "taylor2"}


def results_of(record, cases: int = 2, seed: int = 0, checks=None):
    kwargs = {} if checks is None else {"checks": checks}
    return [r for c in sample_cases(record, seed, cases) for r in check_case(record, c, **kwargs)]


@pytest.mark.parametrize("right", L.RIGHT, ids=lambda r: r.name)
def test_right_records_pass_every_check_that_applies(right):
    record = right
    results = results_of(record)
    failing = [f"{r.check} {r.tensor}: {r.kind} {r.message}" for r in results if not r.passed]
    assert not failing, failing
    passed = {r.check for r in results if r.status == "pass"}
    wanted = (JVP_CHECKS | HVP_CHECKS) - ({"jvp", "hvp"} if record.reference is None else set())
    if record is L.RELU_ELEMENTWISE:
        wanted -= {"taylor2"}  # S is piecewise linear: its second-order model is exact, or kinked
    assert wanted <= passed, wanted - passed
    if record.complex_step:
        assert "jvp-complex-step" in passed


@pytest.mark.parametrize("wrong", L.WRONG, ids=lambda r: r.name)
def test_wrong_records_are_rejected_with_their_kind(wrong):
    record = wrong
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.rejected and report.kind == record.expect_kind, report.render(True)


def _failed(results, check):
    return [r for r in results if r.check == check and r.status == "fail"]


def test_the_dot_product_test_catches_a_wrong_jvp_without_any_reference_and_says_which():
    wrong = dataclasses.replace(next(w for w in L.WRONG if w.name.endswith("jvp-sign")),
                                reference=None)
    results = results_of(wrong, checks=("contract", "fd", "dot-product", "jvp", "jvp-fd"))
    (dot,) = _failed(results, "dot-product")[:1]
    assert dot.kind == "sign" and "the jvp is wrong" in dot.message
    assert not any(r.check == "fd" and r.status == "fail" for r in results)


def test_the_dot_product_test_blames_the_backward_when_it_is_the_wrong_one():
    wrong = dataclasses.replace(L.TANH, name="tanh-backward-halved",
                                backward=lambda d, c: {k: 0.5 * g for k, g in
                                                       L.TANH.backward(d, c).items()})
    (dot,) = _failed(results_of(wrong, cases=1), "dot-product")
    assert dot.kind == "factor" and "the backward is wrong" in dot.message


@pytest.mark.parametrize("reference", [True, False], ids=["reference", "no-reference"])
def test_an_hvp_that_ignores_dout_is_caught(reference):
    wrong = next(w for w in L.WRONG if w.name.endswith("hvp-ignores-dout"))
    wrong = wrong if reference else dataclasses.replace(wrong, reference=None)
    results = results_of(wrong)
    assert _failed(results, "hvp-fd")
    assert bool(_failed(results, "hvp")) == reference


def test_symmetry_catches_a_cross_term_kept_on_one_side_only():
    wrong = next(w for w in L.WRONG if w.name.endswith("hvp-asymmetric"))
    (row,) = _failed(results_of(wrong, cases=1, checks=("contract", "symmetry")), "symmetry")
    assert row.kind == "asymmetric"


def test_symmetry_and_linearity_pass_a_wrong_but_symmetric_linear_hvp():
    """A doubled H v is symmetric and linear: those two must not be what catches it."""
    wrong = next(w for w in L.WRONG if w.name.endswith("hvp-factor-2"))
    results = results_of(wrong, checks=("contract", "symmetry", "linearity", "hvp", "hvp-fd"))
    assert not _failed(results, "symmetry") and not _failed(results, "linearity")
    assert {r.kind for r in _failed(results, "hvp") + _failed(results, "hvp-fd")} == {"factor"}


def test_linearity_catches_a_term_of_the_point_where_the_direction_is_due():
    wrong = next(w for w in L.WRONG if w.name.endswith("jvp-nonlinear"))
    rows = _failed(results_of(wrong, cases=1, checks=("contract", "linearity")), "linearity")
    assert rows and {r.kind for r in rows} == {"nonlinear"}


def test_taylor2_slopes_three_right_two_with_a_wrong_hvp_one_with_a_wrong_gradient():
    def slopes(record):
        return [r.max_rel for r in results_of(record, cases=3, checks=("contract", "hvp",
                                                                      "taylor2"))
                if r.check == "taylor2" and np.isfinite(r.max_rel)]

    gauss_newton = next(w for w in L.WRONG if w.name.endswith("hvp-gauss-newton"))
    wrong_gradient = dataclasses.replace(L.TANH, backward=lambda d, c: {
        k: 1.1 * g for k, g in L.TANH.backward(d, c).items()})
    assert all(2.7 < s < 3.3 for s in slopes(L.TANH)), slopes(L.TANH)
    assert all(1.7 < s < 2.3 for s in slopes(gauss_newton)), slopes(gauss_newton)
    assert all(0.7 < s < 1.3 for s in slopes(wrong_gradient)), slopes(wrong_gradient)


@pytest.mark.parametrize("layer", [L.RELU_ELEMENTWISE, L.RELU], ids=lambda r: r.name)
def test_differences_of_a_relu_gradient_across_its_kinks_do_not_cry_wolf(layer):
    """Inputs on a grid of quarters put exact zeros (kinks) at the point: the gradient jumps
    there, and the hvp-fd stencil straddles the jump at every step."""
    record = layer
    on_grid = dataclasses.replace(record, samplers={k: adapt.quantized(4)
                                                   for k in record.differentiable})
    results = results_of(on_grid, cases=4, checks=("contract", "hvp", "hvp-fd"))
    rows = [r for r in results if r.check == "hvp-fd"]
    assert rows and all(r.passed for r in rows), [r.message for r in rows if not r.passed]
    assert any("straddle a kink" in r.message for r in rows)
    # ... while a wrong hvp on the same kinked points is still caught.
    wrong = dataclasses.replace(on_grid, hvp=lambda dout, v, c: {
        k: 2 * h + v[k] for k, h in record.hvp(dout, v, c).items()})
    assert _failed(results_of(wrong, cases=2, checks=("contract", "hvp-fd")), "hvp-fd")


def test_a_wrong_output_tangent_is_localised_after_the_right_intermediate():
    wrong = next(w for w in L.WRONG if w.name.endswith("jvp-output-step"))
    report = handgrad.check(wrong, cases=2)
    text = "\n".join(report.diagnoses)
    assert "first wrong: the tangent of the output" in text
    assert "correct before it: the tangent of z (T1)" in text
    assert "smallest case with the same failure (jvp (output)" in text


def test_a_jvp_that_writes_into_its_tangent_breaks_the_contract():
    def jvp(t, me):
        t["x"] *= 2.0
        return L.TANH.jvp({**t, "x": t["x"] / 2.0}, me)

    results = results_of(dataclasses.replace(L.TANH, jvp=jvp), cases=1,
                         checks=("contract", "jvp"))
    assert [r.kind for r in _failed(results, "jvp")] == ["mutated-input"] * 2  # both dtypes


def test_the_report_renders_the_new_checks():
    wrong = next(w for w in L.WRONG if w.name.endswith("hvp-factor-2"))
    report = handgrad.check(wrong, cases=2)
    assert report.kind == "factor" and report.kind_result.check == "hvp"
    rows = [r.as_dict() for r in report.results]
    assert {"hvp", "hvp-fd", "symmetry", "taylor2"} <= {r["check"] for r in rows}


def test_a_cs231n_style_pair_adapts_with_its_jvp_and_hvp():
    def affine_tanh_forward(x, w, b):
        out = np.tanh(x @ w + b)
        return out, (x, w, out)

    def affine_tanh_backward(dout, cache):
        x, w, out = cache
        da = dout * (1 - out ** 2)
        return da @ w.T, x.T @ da, da.sum(axis=0)

    def affine_tanh_jvp(t, cache):
        x, w, out = cache
        return (1 - out ** 2) * (t["x"] @ w + x @ t["w"] + t["b"])

    record = adapt.pair("cs231n-affine-tanh", affine_tanh_forward, affine_tanh_backward,
                        shapes="x: N D, w: D M, b: M", dims={"N": (2, 3), "D": (2, 3),
                                                             "M": (2, 4)},
                        reference=lambda x, w, b: torch.tanh(x @ w + b), jvp=affine_tanh_jvp)
    results = results_of(record, cases=1, checks=("contract", "jvp", "dot-product"))
    assert {r.check for r in results if r.status == "pass"} >= {"jvp", "dot-product"}
    assert all(r.passed for r in results)


@pytest.mark.parametrize("fields, says", [
    ({"jvp_intermediates": ("z",)}, "no jvp"),
    ({"jvp": 3}, "jvp must be callable"),
    ({"hvp_reference": lambda t, d, v: v}, "no hvp"),
    ({"skip": {"taylor2": "why"}}, "no hvp"),
    ({"jvp": L.TANH.jvp, "jvp_intermediates": ("x",)}, "share a name with an input"),
])
def test_malformed_linearisation_fields_are_named(fields, says):
    base = dataclasses.replace(L.TANH, jvp=None, hvp=None, jvp_intermediates=(), tags={})
    with pytest.raises(DerivationError, match=says):
        dataclasses.replace(base, **fields)


def test_existing_records_get_no_rows_of_the_new_checks():
    record = handgrad.derivations()[0]
    results = check_case(record, sample_cases(record, 0, 1)[0])
    assert not {r.check for r in results} & (JVP_CHECKS | HVP_CHECKS | {"jvp-complex-step"})


def test_a_gauss_newton_style_hvp_reference_is_used_instead_of_double_backward():
    """hvp_reference replaces the Hessian: here the Gauss-Newton product of the tanh layer,
    J^T diag(dout * tanh'' ...) dropped, against the hand Gauss-Newton hvp."""
    gauss_newton = next(w for w in L.WRONG if w.name.endswith("hvp-gauss-newton"))

    def gn_reference(tensors, dout, v):
        x, W, b = (tensors[k].detach() for k in ("x", "W", "b"))
        y = torch.tanh(x @ W + b)
        gz = dout * (1 - y ** 2)
        return {"x": gz @ v["W"].T, "W": v["x"].T @ gz, "b": torch.zeros_like(b)}

    record = dataclasses.replace(gauss_newton, name="tanh-gauss-newton", expect="pass",
                                 erratum="", expect_kind="", hvp_reference=gn_reference,
                                 skip={"hvp-fd": "G is not the Hessian",
                                       "taylor2": "G is not the Hessian"})
    results = results_of(record, cases=1, checks=("contract", "hvp", "hvp-fd", "taylor2"))
    assert all(r.passed for r in results)
    assert {r.status for r in results if r.check == "hvp"} == {"pass"}
    assert {r.status for r in results if r.check in ("hvp-fd", "taylor2")} == {"skipped"}


def test_the_reference_linearisations_of_the_right_records_are_not_zero():
    """The sampled cases exercise the jvp and hvp (a zero reference could not catch a sign or
    a factor): their reference tangent and H v are non-zero (the zero Hessian of the
    elementwise relu aside, which is right as zero and caught when not, see WRONG)."""
    from handgrad.cases import build_inputs
    from handgrad.oracles.numerics.linear_reference import reference_hvp, reference_jvp

    for record in (L.TANH, L.CE, L.RELU):
        case = sample_cases(record, 0, 1)[0]
        inputs = build_inputs(record, case)
        rng = np.random.default_rng(0)
        v = {k: rng.standard_normal(inputs[k].shape) for k in record.differentiable}
        out, _ = record.forward(**{k: x.copy() for k, x in inputs.items()})
        tangent, _, _ = reference_jvp(record, inputs, v, "float64")
        hv = reference_hvp(record, inputs, rng.standard_normal(np.shape(out)), v, "float64")
        assert np.abs(tangent).max() > 0 and max(np.abs(h).max() for h in hv.values()) > 0


def test_float32_runs_compare_the_jvp_and_hvp_with_a_rounding_allowance():
    results = check_case(L.CE, Case.of({"N": 3, "D": 3, "C": 4}, 5))
    rows = [r for r in results if r.dtype == "float32" and r.check in ("jvp", "hvp")]
    assert rows and all(r.status == "pass" for r in rows)


class _OldStyleTanh(torch.autograd.Function):
    """A reference op written the old way (forward(ctx, ...), backward only): torch.func
    cannot run it, torch.autograd can."""

    @staticmethod
    def forward(ctx, z):
        y = torch.tanh(z)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return dy * (1 - y ** 2)


def test_a_reference_torch_func_cannot_run_is_linearised_by_double_vjp():
    def reference(x, W, b):
        z = x @ W + b
        return _OldStyleTanh.apply(z), {"z": z}

    record = dataclasses.replace(L.TANH, name="tanh-old-style-reference", reference=reference)
    results = results_of(record, cases=1, checks=("contract", "jvp"))
    assert {r.status for r in results if r.check == "jvp"} == {"pass"}
    wrong = dataclasses.replace(next(w for w in L.WRONG if w.name.endswith("jvp-sign")),
                                reference=reference)
    rows = _failed(results_of(wrong, cases=1, checks=("contract", "jvp")), "jvp")
    assert rows and "torch.autograd.functional.jvp" in rows[0].message


def test_the_report_page_draws_the_second_order_taylor_curve_and_the_identities():
    from handgrad.views import html_report
    from handgrad.views.evidence import gather

    wrong = next(w for w in L.WRONG if w.name.endswith("hvp-asymmetric"))
    report = handgrad.check(wrong, cases=2, shrink=False)
    evidence = gather(wrong, report)
    assert evidence.taylor2 is not None and evidence.taylor2.order == 2
    assert [i.title for i in evidence.identities] == ["Dot-product test", "Symmetry of H v"]
    page = html_report.derivation_page(wrong, report, evidence)
    assert 'alt="Second-order Taylor remainder against h' in page
    assert 'alt="Dot-product test: holds"' in page and 'alt="Symmetry of H v: fails"' in page
