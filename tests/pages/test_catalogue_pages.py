"""The catalogue's pages checked equation by equation against their records' references, at
several seeds: every evaluated equation passes, and wrong equations are rejected at their tag
with their kind. Reproduce one: ``handgrad check RECORD --seed SEED`` (rows check=equation)."""

from __future__ import annotations

import dataclasses

import pytest

import handgrad
from handgrad.check import cases_for
from handgrad.pages import check_page, load_page
from handgrad.pages.loader import Equation

SEEDS = (0, 1, 2)


def _record(name: str):
    return next(r for r in handgrad.derivations() if r.name == name)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["mlp-ce-tanh", "mlp-ce-relu", "mlp-l2sig-sigmoid"])
def test_mlp_page_passes(name: str, seed: int) -> None:
    record = _record(name)
    for case in cases_for(record, seed, 3):
        results = check_page(record, case)
        assert results, f"{name}: no equations found on {record.doc}"
        bad = [r for r in results if r.status == "fail"]
        assert not bad, f"{name} seed={seed} case={case.describe()}: {bad}"
        evaluated = [r for r in results if r.status == "pass"]
        assert len(evaluated) >= 14, f"{name} seed={seed}: only {len(evaluated)} evaluated"


WRONG = {
    "M8": (r"\frac{\partial L}{\partial W_2} = -\Big(\frac{\partial L}{\partial a_2}\Big)^{\!\top}"
           r" h - \lambda W_2", "sign"),
    "M9": (r"\frac{\partial L}{\partial b_2} = 2 \sum_n \frac{\partial L}{\partial a_{2,n}}",
           "factor"),
    "M10": (r"\frac{\partial L}{\partial h} = \frac{\partial L}{\partial a_2} W_2^\top", "shape"),
    "M13": (r"\frac{\partial L}{\partial b_1} = \sum_j \frac{\partial L}{\partial a_{1,n}}",
            "shape"),
}


@pytest.mark.parametrize("tag", sorted(WRONG))
def test_wrong_mlp_equations_rejected_with_kind(tag: str) -> None:
    record = _record("mlp-ce-tanh")
    text, kind = WRONG[tag]
    page = dataclasses.replace(load_page(record.doc), equations=(Equation(tag, text, 1),))
    case = cases_for(record, 0, 2)[1]
    (result,) = check_page(record, case, page)
    assert result.status == "fail" and result.kind == kind, \
        f"{tag} seed=0 case={case.describe()}: {result}"


def _one_record_per_page_and_variant():
    seen, out = set(), []
    for r in handgrad.derivations():
        key = (r.doc, r.equations)
        if r.doc and key not in seen:
            seen.add(key)
            out.append(r)
    return out


@pytest.mark.parametrize("page_record", _one_record_per_page_and_variant(), ids=lambda r: r.name)
def test_no_equation_of_the_catalogue_fails(page_record) -> None:
    """Every evaluated equation passes on every page (the errata records transcribe wrong code,
    their pages are right); what is not evaluated says why."""
    for case in cases_for(page_record, 0, 2):
        for r in check_page(page_record, case):
            assert r.status != "fail", f"{page_record.name} seed=0 case={case.describe()}: {r}"
            if r.status in ("not-checkable", "skipped"):
                assert r.message, f"{page_record.name} {r.tag}: {r.status} without a reason"


@pytest.mark.slow
@pytest.mark.parametrize("seed", (1, 2, 3))
@pytest.mark.parametrize("page_record", _one_record_per_page_and_variant(), ids=lambda r: r.name)
def test_no_equation_fails_at_more_seeds(page_record, seed: int) -> None:
    for case in cases_for(page_record, seed, 4):
        for r in check_page(page_record, case):
            assert r.status != "fail", f"{page_record.name} seed={seed} case={case.describe()}: {r}"
