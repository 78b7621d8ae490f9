"""Where equation results go: the terminal's line and block, the HTML page's marks, the side by
side of page and code. On hand-made results (the engine's own are in test_page_checks.py)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from handgrad import transcription
from handgrad.report import Report, Result
from handgrad.views import digest, markdown_html, terminal
from tests.corpus.pages import two_layer


def row(check: str, tag: str, status: str, kind: str = "", tensor: str = "W2",
        message: str = "") -> Result:
    return Result("two-layer", "m=3,n0=2,n1=4,n2=3", 0, "float64", check, tensor, status,
                  kind=kind, tag=tag, message=message)


def report() -> Report:
    """(7) right on page and in code; (9) right on the page, wrong in the code; (6) wrong on
    the page, right in the code; (10) not checkable."""
    return Report("two-layer", results=[
        row("equation", "7", "pass"), row("autograd", "7", "pass"),
        row("equation", "9", "pass", tensor="Z1"),
        row("autograd", "9", "fail", "values", tensor="Z1"),
        row("equation", "6", "fail", "sign", tensor="Z2", message="page = -1 x reference"),
        row("autograd", "6", "pass", tensor="Z2"),
        row("equation", "10", "skipped", message="not checkable: \\otimes"),
    ])


def test_each_equation_beside_its_code():
    verdicts = {v.tag: v for v in transcription.equations(report())}
    assert [v.transcription for v in verdicts.values()] == ["", "code", "page", ""]
    assert verdicts["6"].kind == "sign" and verdicts["9"].code_kind == "values"
    assert transcription.equation_count(report()) == (2, 1, 1)


def test_the_page_column_counts_the_checked_equations():
    cells = dict((h, fig) for h, fig, _ in digest.oracle_cells(report(), page=True))
    assert cells["page"] == "2/3"
    assert "page" not in dict((h, f) for h, f, _ in digest.oracle_cells(report()))


def test_the_block_points_at_the_code_line_of_the_tag():
    record = type("R", (), {"backward": two_layer.backward_sigma_for_prime})()
    notes = transcription.notes(record, report())
    assert len(notes) == 2
    assert notes[0].startswith("  transcription: (9) is right on the page and wrong in the code")
    assert "two_layer.py:" in notes[0] and "dZ1 = (W2.T @ dZ2) * A1" in notes[0]
    assert "the code is right at (6) and the page is not [sign]" in notes[1]
    out = Console(file=io.StringIO(), width=200, no_color=True)
    terminal.equations_block(out, report())
    text = out.file.getvalue()
    assert "page: 2 of 4 equations right, 1 wrong, 1 not checked" in text
    assert "(6)" in text and "page FAIL [sign]" in text and "code ok" in text
    assert "look at the code's line tagged (9)" in text
    assert "(7)" not in text  # right on both sides: shown with --verbose only


def test_tagged_lines_reads_the_comments():
    lines = transcription.tagged_lines(two_layer.backward)
    assert set(lines) == {"6", "7", "8", "9", "10", "11"}
    path, number, text = lines["7"]
    assert path.endswith("two_layer.py") and text.startswith("dW2 = dZ2 @ A1.T")
    assert Path(path).read_text().splitlines()[number - 1].strip() == text


def test_the_html_marks_the_failing_equation_with_its_diagnosis():
    page = Path("tests/corpus/pages/two_layer.md").read_text()
    verdicts = {v.tag: v for v in transcription.equations(report())}
    html, tags = markdown_html.render(page, verdicts)
    assert tags == [str(i) for i in range(1, 12)]
    failing = html.split('id="eq-6"')[0].rsplit("<span", 1)[1]
    assert 'class="eq fail"' in failing
    six = html.split('id="eq-6"')[1].split('id="eq-7"')[0]
    assert "WRONG [sign]" in six and "code: right" in six and "the page is not" in six
    assert "page = -1 x reference" in six
    nine = html.split('id="eq-9"')[1].split('id="eq-10"')[0]
    assert "the transcription is not" in nine
    assert 'class="eq"' in html.split('id="eq-1"')[0].rsplit("<span", 1)[1]  # unchecked: plain
