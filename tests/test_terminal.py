"""``handgrad check`` in the terminal: one line per derivation, blocks only for what is
unexpected, a closing summary; every row with --verbose; --json untouched; a live progress bar
on a terminal only; --list aligned."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
from rich.console import Console

import handgrad
from handgrad import cli, discovery
from handgrad.discovery import find
from handgrad.views import terminal

CASES = 2


def wrong_kind():
    """A transcribed error expecting another kind than the one the engine gives: unexpected."""
    return dataclasses.replace(find("mlp-source-dyhat-sign"), name="mlp-dyhat-sign-said-factor",
                               expect_kind="factor")


def broken_right():
    """A wrong backward claiming to be right, with a long case description (LeNet-5)."""
    return dataclasses.replace(find("lenet5-err-fprime-at-Xt"), name="lenet5-claims-right",
                               expect="pass", expect_kind="", erratum="")


@pytest.fixture(scope="module")
def records():
    return [find("mlp-ce-tanh"), find("mlp-source-dyhat-sign"), wrong_kind(), broken_right()]


def run(monkeypatch, capsys, records, *args) -> tuple[int, str]:
    monkeypatch.setattr(discovery, "discover_sources", lambda paths: [("here", records, [])])
    status = cli.main(["check", "--cases", str(CASES), *args])
    return status, capsys.readouterr().out


def test_one_line_per_derivation_then_blocks_for_the_unexpected_only(monkeypatch, capsys,
                                                                      records):
    status, out = run(monkeypatch, capsys, records)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["derivation", "cases"]
    rows = lines[1:1 + len(records)]
    assert [row.split()[0] for row in rows] == [r.name for r in records]
    assert rows[0].endswith("pass") and rows[1].endswith("rejected [sign]")
    assert "WRONG KIND" in rows[2] and "FAIL" in rows[3]
    assert lines[1 + len(records)] == ""
    # Blocks for the two unexpected results only, then the summary, last.
    blocks = [line.split()[1] for line in lines if line.startswith("== ")]
    assert blocks == [records[2].name, records[3].name]
    assert re.fullmatch(r"2/4 derivations as expected \(1 of 2 known errors rejected, \d+ "
                        r"results, \d+\.\d s\)", lines[-1])
    assert "REJECTED, but diagnosed 'sign' where 'factor' was expected" in out
    # Short lines (the rows of old were 150 to 330 wide, the case column alone 85): no case
    # column; the figures take 11 columns each (the forward's its own since issue 24).
    assert all(len(row) <= 131 for row in rows[:2]) and all(len(row) <= 171 for row in rows)
    assert not any(" s=" in row for row in rows)


def test_long_cases_are_numbered_in_the_table_and_given_in_full_above_it(monkeypatch, capsys,
                                                                          records):
    _, out = run(monkeypatch, capsys, records[3:])
    block = out[out.index("== lenet5-claims-right"):]
    full = re.search(r"case (#\d+): (\S+), data seed (\d+)", block)
    assert full, block[:500]
    label, case, seed = full.groups()
    table_rows = [line for line in block.splitlines() if line.startswith(label + " ")]
    assert table_rows and not any(case in row for row in table_rows)
    assert f"--dims {case} --data-seed {seed}" in block  # the reproduce command, in full
    # Short cases stay in the table as they are.
    _, out = run(monkeypatch, capsys, records[2:3])
    assert re.search(r"^C=\d+,M=\d+,N=\d+,d=\d+ s=\d+ +float64 ", out, re.M)


def test_verbose_prints_every_row_of_every_derivation(monkeypatch, capsys):
    record = find("mlp-ce-tanh")
    _, out = run(monkeypatch, capsys, [record], "--verbose")
    report = handgrad.check(record, cases=CASES)
    block = out[out.index("== mlp-ce-tanh"):]
    rows = [line for line in block.splitlines() if re.match(r"(#\d+|\S+ s=\d+) +float(64|32) ",
                                                                line)]
    assert len(rows) == len(report.results)
    assert "verdict: PASS" in block


def test_json_is_the_results_and_nothing_else(monkeypatch, capsys):
    record = find("mlp-ce-tanh")
    _, out = run(monkeypatch, capsys, [record], "--json")
    expected = [{**r.as_dict(), "expect": "pass"}
                for r in handgrad.check(record, cases=CASES).results]
    assert out == json.dumps(expected, indent=1) + "\n"


def test_outside_a_terminal_there_is_no_progress_bar_and_no_colour(monkeypatch, capsys):
    _, out = run(monkeypatch, capsys, [find("mlp-ce-tanh")])
    assert "\x1b[" not in out and "checking" not in out


def test_on_a_terminal_a_live_bar_runs_under_the_lines(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(terminal, "console",
                        lambda: Console(file=screen, force_terminal=True, width=140))
    reports = [handgrad.check(find(n), cases=CASES) for n in ("mlp-ce-tanh", "mlp-ce-relu")]
    with terminal.Display([r.derivation for r in reports]) as display:
        assert display.progress is not None
        for report in reports:
            display.started(report.derivation)
            display.finished(report)
    display.close(reports, 1.0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "checking" in text and "2/2" in text
    assert "mlp-ce-relu" in text and "2/2 derivations as expected" in text


def test_list_aligns_its_columns_for_long_names(monkeypatch, capsys, records):
    long_name = dataclasses.replace(find("mlp-ce-tanh"), name="x" * 45)
    status, out = run(monkeypatch, capsys, [*records, long_name], "--list")
    assert status == 0
    lines = out.splitlines()
    starts = {line.index(" pass ") if " pass " in line else line.index(" reject ")
              for line in lines[1:]}
    assert len(starts) == 1 and starts.pop() >= 45
