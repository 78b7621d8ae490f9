"""Every discovered derivation, on every sampled case, against every oracle. Names none."""

from __future__ import annotations

import re
from pathlib import Path

import handgrad
from handgrad.check import check_case
from handgrad.localise import localise, smallest_failing
from handgrad.report import Report

ROOT = Path(__file__).resolve().parent.parent


def test_right_derivation_passes_every_oracle(right_case):
    record, case = right_case
    results = check_case(record, case)
    report = Report(record.name, results=results)
    if not report.passed:
        report.diagnoses = localise(record, report) + smallest_failing(record, report,
                                                                      check_case)
    assert report.passed, "\n" + report.render(only_failures=True)


def test_right_derivation_exercises_every_gradient(right_record, grad_seed, grad_cases):
    """No hollow pass: every gradient has a non-zero reference in some checked case."""
    report = handgrad.check(right_record, seed=grad_seed, cases=grad_cases,
                            checks=("contract", "autograd"), shrink=False)
    vacuous = [r for r in report.results if r.status == "vacuous"]
    assert not vacuous, "\n".join(f"{r.tensor}: {r.message}" for r in vacuous)


def test_transcribed_error_is_rejected(erratum, grad_seed, grad_cases):
    report = handgrad.check(erratum, seed=grad_seed, cases=grad_cases, shrink=False)
    assert report.rejected, (
        f"{erratum.name} transcribes a known error ({erratum.erratum}) but was not rejected "
        f"({report.status}):\n{report.render()}")
    assert all(r.kind for r in report.failures), "every failure must carry a diagnosis kind"
    if erratum.expect_kind:
        assert report.kind == erratum.expect_kind, (
            f"{erratum.name} was diagnosed {report.kind!r}, but the record expects "
            f"{erratum.expect_kind!r}:\n{report.render(only_failures=True)}")


def test_derivation_is_documented(record):
    assert record.doc, f"{record.name}: no Markdown derivation found next to its module"
    text = (ROOT / record.doc).read_text()
    # A derivation of the source's models lists how it differs from the source; one without a
    # source write-up lists the mistakes people make instead.
    last = "Differences from the source" if record.source else "Common mistakes"
    for section in ("Shapes", "Forward", "Backward", "Gradients", last):
        assert re.search(rf"^#+ .*{section}", text, re.M), \
            f"{record.doc} lacks a '{section}' section"
    tags = set(re.findall(r"\\tag\{([^}]+)\}", text))
    missing = sorted(set(record.tags.values()) - tags)
    assert not missing, f"{record.name}: tags {missing} are cited but not in {record.doc}"


def test_every_tag_is_cited_in_code(record):
    """A tag in the record must also stand in a comment, ``(M7)``, beside the code computing it."""
    source = "\n".join(p.read_text() for p in (ROOT / "derivations").glob("*.py"))
    uncited = sorted(t for t in set(record.tags.values()) if f"({t})" not in source)
    assert not uncited, f"{record.name}: tags {uncited} are cited by no comment in derivations/"
