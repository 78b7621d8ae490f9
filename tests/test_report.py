"""The visual report: the evidence re-run from one case, the static site (structure, every plot
present and inline, nothing fetched, equations anchored), the benchmark page and the notebook
view. The browser test (tests/test_browser.py) opens the same site in Chromium."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import handgrad
from handgrad import cli
from handgrad.discovery import find
from handgrad.oracles.numerics import fd
from handgrad.report import Report
from handgrad.views import site
from handgrad.views.evidence import gather

RIGHT = "mlp-ce-tanh"
SLICES = "rnn-mutant-recurrent-term-dropped"  # wrong in time steps 0..T-2, right at T-1
FIGURED = "rnn-doublesum-tanh-ce"  # carries the delta-table figure
TRANSPOSED = "rnn-source-w-shape"  # a gradient of the wrong shape
CASES = 2

VOID = {"meta", "img", "br", "hr", "input", "link", "col", "area", "base", "wbr", "source"}


class Page(HTMLParser):
    """The tags, images, links and ids of a page, and whether its elements nest properly."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.stack: list[str] = []
        self.misnested: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.misnested.append(tag)
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def svg_of(img: dict) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert img["src"].startswith(prefix), img["src"][:60]
    return base64.b64decode(img["src"][len(prefix):]).decode()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, Report]]:
    out = tmp_path_factory.mktemp("report")
    records = [find(n) for n in (RIGHT, SLICES, FIGURED, TRANSPOSED)]
    reports = site.build(out, records, cases=CASES, jobs=1)
    return out, {r.derivation: r for r in reports}


def page_of(out: Path, name: str) -> Page:
    return Page((out / f"{name}.html").read_text())


def test_the_index_links_every_derivation_with_its_verdict(built):
    out, reports = built
    index = (out / "index.html").read_text()
    parsed = Page(index)
    assert not parsed.misnested and not parsed.stack
    for name in reports:
        assert f"{name}.html" in parsed.links
        assert (out / f"{name}.html").is_file()
    assert "4/4 derivations as expected" in index
    assert "rejected" in index and "slices" in index


def test_every_page_is_well_formed_self_contained_and_fetches_nothing(built):
    out, _ = built
    for path in out.glob("*.html"):
        text = path.read_text()
        parsed = Page(text)
        assert not parsed.misnested and not parsed.stack, (path.name, parsed.misnested)
        # Nothing to fetch: no script, no stylesheet link, no external source or link.
        assert "script" not in parsed.tags and "link" not in parsed.tags, path.name
        outside = re.sub(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]+", "", text)
        assert "http://" not in outside and "https://" not in outside, path.name
        assert "url(" not in outside and "@import" not in outside, path.name
        for img in parsed.images:
            svg = svg_of(img)
            assert "<svg" in svg and "</svg>" in svg and img.get("alt")
            # The SVG itself refers to nothing outside (its images are inline PNGs).
            assert not re.search(r'(?:xlink:)?href="(?!#|data:)', svg), path.name


def test_a_right_derivation_has_its_table_and_both_curves(built):
    out, _ = built
    page = page_of(out, RIGHT)
    alts = [img["alt"] for img in page.images]
    assert any(a.startswith("Taylor remainder") for a in alts), alts
    assert any("finite-difference error" in a for a in alts), alts
    assert not any("hand minus reference" in a for a in alts)
    text = (out / f"{RIGHT}.html").read_text()
    assert 'class="matrix"' in text and "Diagnosis" not in text
    # The Taylor plot carries its guides and the floor; the sweep its marks.
    taylor = svg_of(next(i for i in page.images if i["alt"].startswith("Taylor")))
    for label in ("slope 1", "slope 2", "round-off floor", "fitted"):
        assert label in taylor
    sweep = svg_of(next(i for i in page.images if "finite-difference" in i["alt"]))
    assert "engine's step" in sweep and "|hand - truth|" in sweep


def test_a_failing_derivation_has_the_diagnosis_the_heatmap_and_linked_equations(built):
    out, reports = built
    page = page_of(out, SLICES)
    text = (out / f"{SLICES}.html").read_text()
    assert "Diagnosis" in text and "reproduce: handgrad check " + SLICES in text
    heatmaps = [i for i in page.images if "hand minus reference" in i["alt"]]
    assert heatmaps and "[slices]" in svg_of(heatmaps[0])
    # The first wrong tensor's tag links to its equation in the derivation's Markdown.
    tag = reports[SLICES].kind_result.tag
    assert f"#eq-{tag}" in page.links and f"eq-{tag}" in page.ids
    for link in page.links:
        if link.startswith("#eq-"):
            assert link[1:] in page.ids, link


def test_a_wrong_shape_is_drawn_as_both_shapes_and_figures_side_by_side(built):
    out, _ = built
    alts = [img["alt"] for img in page_of(out, TRANSPOSED).images]
    assert any("different shapes" in a for a in alts), alts
    alts = [img["alt"] for img in page_of(out, FIGURED).images]
    assert any(a.startswith("|dL_t/dz_k|") for a in alts), alts


def test_the_sweep_shows_the_v_of_truncation_and_round_off_and_marks_the_engines_step():
    record = find(RIGHT)
    report = handgrad.check(record, cases=CASES)
    evidence = gather(record, report)
    assert evidence.sweeps and not evidence.notes
    inputs = evidence_inputs(record, evidence)
    for s in evidence.sweeps:
        errors = s.errors[np.isfinite(s.errors)]
        best = errors.min()
        # Truncation at h = 1 and round-off at h = 1e-12 each leave the error at least 100
        # times its best: the two arms of the V (tanh's curvature is O(1), eps / 1e-12 = 2e-4).
        assert s.errors[0] > 100 * best and s.errors[-1] > 100 * best, s.errors
        assert 1e-9 < s.steps[np.argmin(s.errors)] < 1e-2
        x = float(inputs[s.tensor][s.index])
        assert s.chosen == pytest.approx(fd.STEP * max(1.0, abs(x)))
        # A right gradient is as close to autograd as float64 differences can tell.
        assert s.truth_from == "autograd" and s.hand_error <= 1e-9 * max(abs(s.truth), 1.0)


def evidence_inputs(record, evidence):
    from handgrad.cases import Case, build_inputs
    from handgrad.report import case_dims

    return build_inputs(record, Case.of(case_dims(evidence.case), evidence.data_seed))


def test_the_heatmap_data_shows_the_wrong_time_steps_only():
    record = find(SLICES)
    evidence = gather(record, handgrad.check(record, cases=CASES))
    first = evidence.diffs[0]
    assert first.axes[0] == "T" and first.hand.shape == first.ref.shape
    delta = np.abs(first.hand - first.ref)
    # The dropped recurrent term is U^T dL/dz_{t+1}: absent at the last step, so that slice is
    # exact (up to float64 rounding of O(1) values) and every earlier one is wrong.
    assert delta[-1].max() <= 1e-12
    assert all(delta[t].max() > 1e-3 for t in range(delta.shape[0] - 1))


def test_the_delta_table_figure_agrees_with_autograd_and_is_lower_triangular():
    record = find(FIGURED)
    evidence = gather(record, handgrad.check(record, cases=CASES))
    (figure,) = evidence.figures
    T = figure.hand.shape[0]
    assert figure.hand.shape == figure.ref.shape == (T, T)
    # Norms of dL_t/dz_k from the same products in another order: rounding ~ T M eps of the
    # largest entry (as in tests/test_rnn.py); 1e-12 leaves a factor 100.
    np.testing.assert_allclose(figure.hand, figure.ref, rtol=1e-12, atol=1e-12)
    assert not np.triu(figure.hand, 1).any() and not np.triu(figure.ref, 1).any()
    assert (np.diag(figure.hand) > 0).all()


def test_a_record_without_a_reference_draws_against_the_complex_step():
    from tests.test_broken import LINEAR

    record = dataclasses.replace(LINEAR, name="linear-no-reference", reference=None,
                                 complex_step=True)
    evidence = gather(record, handgrad.check(record, cases=CASES))
    assert evidence.sweeps and {s.truth_from for s in evidence.sweeps} == {"the complex step"}
    assert evidence.taylor is not None and evidence.taylor.status == "pass"


def test_the_notebook_view_holds_the_table_and_inline_curves():
    report = handgrad.check(SLICES, cases=CASES)
    shown = report._repr_html_()
    assert 'class="matrix"' in shown and "rejected" in shown
    parsed = Page(shown)
    assert not parsed.misnested and not parsed.stack
    assert len(parsed.images) >= 3 and all(svg_of(i) for i in parsed.images)
    # Its styles are scoped: the notebook around it keeps its own.
    style = shown.split("<style>")[1].split("</style>")[0]
    assert all(rule.startswith(".handgrad-report") for rule in re.findall(r"[^{}]+(?=\{)", style))


def test_a_report_of_an_unknown_record_still_shows_its_table():
    report = handgrad.check(find(RIGHT), cases=CASES)
    orphan = dataclasses.replace(report, derivation="not-a-record-here")
    shown = orphan._repr_html_()
    assert 'class="matrix"' in shown and "cannot be drawn" in shown
    assert "<img" not in shown


def test_the_benchmark_page_charts_hand_against_autograd(tmp_path):
    # A file in pytest-benchmark's format: the renderer is under test, not the timings.
    data = {"datetime": "2026-01-01", "machine_info": {"node": "ci"}, "benchmarks": [
        {"group": "rnn (1, 50) float64", "name": "test_hand_forward_backward[rnn]",
         "stats": {"median": 0.002}},
        {"group": "rnn (1, 50) float64", "name": "test_autograd_forward_backward[rnn]",
         "stats": {"median": 0.004}},
        {"group": "lonely", "name": "test_hand_forward_backward[x]", "stats": {"median": 1.0}}]}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(data))
    assert cli.main(["report", "--bench", str(bench), "--html", str(tmp_path / "site")]) == 0
    text = (tmp_path / "site" / "bench.html").read_text()
    page = Page(text)
    assert len(page.images) == 1 and "x0.50" in svg_of(page.images[0])
    assert "<td class=\"num\">0.50</td>" in text and "lonely" not in text
    (tmp_path / "empty.json").write_text(json.dumps({"benchmarks": []}))
    assert cli.main(["report", "--bench", str(tmp_path / "empty.json"), "--html",
                     str(tmp_path / "site")]) == 2


def test_check_html_reuses_the_check_and_report_checks_itself(tmp_path, capsys):
    assert cli.main(["check", RIGHT, "--cases", str(CASES), "--html", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "1/1 derivations as expected" in out and "report: " in out
    assert (tmp_path / "a" / f"{RIGHT}.html").is_file()
    assert cli.main(["report", RIGHT, "--cases", str(CASES), "-j", "1", "--html",
                     str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "index.html").is_file()
    assert cli.main(["report", "no-such-record", "--html", str(tmp_path / "c")]) == 1


def test_drawing_in_worker_processes_gives_the_same_verdicts(tmp_path):
    names = [RIGHT, SLICES]
    records = [find(n) for n in names]
    parallel = site.build(tmp_path, records, cases=CASES, jobs=2)
    assert [r.derivation for r in parallel] == names
    for record, report in zip(records, parallel):
        alone = handgrad.check(record, cases=CASES)
        assert [r.as_dict() for r in report.results] == [r.as_dict() for r in alone.results]
        assert Page((tmp_path / f"{record.name}.html").read_text()).images


def test_a_non_finite_gradient_still_gets_its_page_and_heatmap():
    from tests.test_broken import BROKEN, with_backward

    record = with_backward("non-finite", BROKEN["non-finite"][0])
    report, text = site.draw(record, None, cases=CASES)
    assert report.rejected
    heatmaps = [i for i in Page(text).images if "hand minus reference" in i["alt"]]
    assert heatmaps and "black: NaN or inf" in svg_of(heatmaps[0])
    assert "raised" not in text
