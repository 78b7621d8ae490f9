"""A page written from scratch in another notation (a student's two-layer network: examples as
columns, W^{[1]}, delta^{(2)}, one equation in index notation), checked with one binding line
per symbol: with the student's code, and with only the page and a reference."""

from __future__ import annotations

import pytest

from handgrad import check
from handgrad.cases import sample_cases
from handgrad.pages import check_page
from handgrad.transcription import equations
from tests.corpus.pages import two_layer

SEEDS = (0, 1, 2)


def verdicts(record, seed: int) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for case in sample_cases(record, seed, 3):
        for e in check_page(record, case):
            out.setdefault(e.tag, set()).add((e.status, e.kind))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_the_right_page_passes_before_any_code_exists(seed):
    def no_code_yet(dout, cache):
        raise AssertionError("the page's check never runs the hand backward")

    page_only = two_layer.record("two-layer-page-only", "two_layer.md", backward=no_code_yet)
    got = verdicts(page_only, seed)
    assert sorted(got, key=int) == [str(i) for i in range(1, 12)]
    assert all(v == {("pass", "")} for v in got.values()), got


@pytest.mark.parametrize("seed", SEEDS)
def test_the_first_attempt_is_rejected_at_each_wrong_step_only(seed):
    got = verdicts(two_layer.record("two-layer-wrong", "two_layer_wrong.md"), seed)
    assert got["6"] == {("fail", "sign")}                      # Y - Yhat
    assert got["7"] == {("fail", "shape")}                     # A^{[1]} not transposed
    assert {s for s, _ in got["9"]} == {"fail"}                # sigma for sigma'
    # j and k swapped in the index notation: rejected (the engine calls it values today, not
    # yet a notation error: see the report)
    assert {s for s, _ in got["10"]} == {"fail"}
    right = set(got) - {"6", "7", "9", "10"}
    assert all(got[t] == {("pass", "")} for t in right), got


def test_the_binding_is_one_line_per_symbol():
    assert len(two_layer.SYMBOLS) == len(set(two_layer.SYMBOLS)) == 11


def test_page_right_and_code_wrong_points_at_the_transcription():
    record = two_layer.record("two-layer-slip", "two_layer.md",
                              backward=two_layer.backward_sigma_for_prime)
    report = check(record, cases=2, checks=("contract", "autograd", "equation"), shrink=False)
    nine = next(v for v in equations(report) if v.tag == "9")
    assert (nine.status, nine.code, nine.transcription) == ("pass", "fail", "code")
    assert all(v.status == "pass" for v in equations(report))
    note = next(d for d in report.diagnoses if "transcription: (9)" in d)
    assert "two_layer.py:" in note and "dZ1 = (W2.T @ dZ2) * A1 " in note


def test_page_wrong_and_code_right_points_at_the_page():
    record = two_layer.record("two-layer-page-slip", "two_layer_wrong.md")
    report = check(record, cases=2, checks=("contract", "autograd", "equation"), shrink=False)
    six = next(v for v in equations(report) if v.tag == "6")
    assert (six.status, six.kind, six.code, six.transcription) == ("fail", "sign", "pass", "page")
    assert any("the code is right at (6) and the page is not [sign]" in d
               for d in report.diagnoses)


def test_json_rows_carry_check_equation_and_the_tag(capsys):
    import json

    from handgrad import cli

    cli.main(["check", "two-layer-first-attempt", "--path", "tests/corpus/pages/records.py",
              "--cases", "1", "--json"])
    rows = [r for r in json.loads(capsys.readouterr().out) if r["check"] == "equation"]
    assert sorted(r["tag"] for r in rows) == sorted(str(i) for i in range(1, 12))
    six = next(r for r in rows if r["tag"] == "6")
    assert (six["tensor"], six["status"], six["kind"]) == (r"\delta^{(2)}", "fail", "sign")
