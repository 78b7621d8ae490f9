"""``handgrad check`` in the terminal, rendered with rich.

By default one line per derivation as soon as it is checked (name, cases, the worst figure per
oracle, the verdict), a live progress bar under the lines on a terminal (plain lines when the
output is a file or a pipe, as in CI), then a block for each unexpected result and a closing
summary. ``--verbose`` prints every row as before. A table whose case descriptions are too long
for its column numbers the cases, and the block gives each in full above the table.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from handgrad import contain, transcription
from handgrad.report import STATUS_WORD, Report, Result, informativeness
from handgrad.views import digest

# Outside a terminal nothing is cut: lines are as long as their content (CI logs, files).
FILE_WIDTH = 1000
FIGURE_WIDTH = 8  # "autograd", 1.2e-04
SLOPE_WIDTH = 10  # slope 2.00
PAGE_WIDTH = 5  # 14/14: equations right / checked (a page holds fewer than 100)
CASE_WIDTH = 28
BAD = ("fail", "error", "vacuous")


def console() -> Console:
    """A console on the current stdout (so that pytest's capture sees it)."""
    out = Console(file=sys.stdout, highlight=False)
    if not out.is_terminal:
        out = Console(file=sys.stdout, highlight=False, width=FILE_WIDTH, no_color=True)
    return out


def emit(out: Console, renderable) -> None:
    """Print a table; outside a terminal without the padding at the ends of its lines."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    out.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _grid(name_width: int, linear: bool = False, page: bool = False) -> Table:
    grid = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1), expand=False)
    grid.add_column(width=name_width, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=5, justify="right", no_wrap=True)
    for heading, _, _ in digest.columns(linear, page):
        grid.add_column(width=SLOPE_WIDTH if heading == "taylor" else PAGE_WIDTH
                        if heading == "page" else FIGURE_WIDTH,
                        justify="right", no_wrap=True, overflow="ellipsis")
    grid.add_column(no_wrap=True, overflow="ellipsis")
    return grid


def verdict_text(report: Report) -> Text:
    v = digest.verdict(report)
    text = Text(v.word, style="green" if v.good else "bold red")
    if v.detail:
        text.append(f" [{v.detail}]" if v.good or v.word == "FAIL" else f": {v.detail}")
    return text


def summary_line(report: Report, name_width: int, linear: bool = False,
                 page: bool = False) -> Table:
    """One line: name, cases, the worst figure per oracle (with the jvp and hvp columns when
    ``linear``, the page's equations passing / checked when ``page``), the verdict."""
    grid = _grid(name_width, linear, page)
    figures = [Text(fig, style="red" if status in BAD and report.expect == "pass" else "")
               for _, fig, status in digest.oracle_cells(report, linear, page)]
    grid.add_row(report.derivation, str(digest.case_count(report)), *figures,
                 verdict_text(report))
    return grid


def header_line(name_width: int, linear: bool = False, page: bool = False) -> Table:
    grid = _grid(name_width, linear, page)
    grid.add_row("derivation", "cases", *(h for h, _, _ in digest.columns(linear, page)),
                 "verdict",
                 style="bold")
    return grid


def case_labels(results: Sequence[Result]) -> dict[tuple[str, int], str]:
    """How the table names each case: in full when every case fits the column, else by a
    number (``#1`` in order of informativeness), given in full above the table."""
    cases = sorted({(r.case, r.data_seed) for r in results}, key=lambda c: informativeness(c[0]))
    full = {c: f"{c[0]} s={c[1]}" for c in cases}
    if all(len(text) <= CASE_WIDTH for text in full.values()):
        return full
    return {c: f"#{i}" for i, c in enumerate(cases, 1)}


def results_table(results: Sequence[Result]) -> Table:
    """The per-tensor rows, cases named as ``case_labels`` says."""
    labels = case_labels(results)
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold",
                  show_edge=False)
    for heading in ("case", "dtype", "check", "tensor", "max abs", "max rel", "worst index",
                    "hand", "ref", "rtol/atol", "verdict"):
        table.add_column(heading, no_wrap=True, overflow="ellipsis",
                         justify="right" if heading in ("max abs", "max rel", "hand", "ref")
                         else "left")
    for r in results:
        verdict = Text(STATUS_WORD[r.status] + (f" [{r.kind}]" if r.kind else ""),
                       style="red" if r.status in BAD else "")
        table.add_row(labels[(r.case, r.data_seed)], r.dtype, r.check,
                      r.tensor + (f" ({r.tag})" if r.tag else ""), _fmt(r.max_abs),
                      _fmt(r.max_rel), str(list(r.worst_index)) if r.worst_index else "-",
                      _fmt(r.hand_value), _fmt(r.ref_value),
                      "-" if r.rtol != r.rtol else f"{r.rtol:.0e}/{r.atol:.0e}", verdict)
    return table


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.2e}"


def block(out: Console, report: Report, verbose: bool = False) -> None:
    """The detail of one report: its rows (every row with ``verbose``, else the failing rows of
    the most telling case), each case in full, the messages, the localisation, the verdict."""
    rows = list(report.results)
    rest = 0
    if not verbose:
        telling = report.telling_case()
        rows = [r for r in report.failures
                if (r.case, r.data_seed) == telling or r.status == "vacuous"]
        rest = len(report.failures) - len(rows)
    title = f"== {report.derivation}" + (f"  (transcribes: {report.erratum})"
                                          if report.erratum else "")
    out.print(Text(title, style="bold"), soft_wrap=True)
    for (case, seed), label in case_labels(rows).items():
        if label.startswith("#"):
            out.print(f"  case {label}: {case}, data seed {seed}", soft_wrap=True)
    if rows:
        emit(out, results_table(rows))
    if rest:
        out.print(f"  (+{rest} failing rows in other cases; check with --verbose)")
    seen = set()
    for r in rows:
        evidence = r.message.split("; ")[-1]
        if r.message and (not r.passed or r.status in ("unreliable", "skipped", "warning")) \
                and (r.tensor, evidence) not in seen:
            seen.add((r.tensor, evidence))
            out.print(f"  {r.check} {r.tensor}: {r.message}", soft_wrap=True)
    equations_block(out, report, verbose)
    for line in report.diagnoses:
        out.print(line, soft_wrap=True, markup=False)
    printed = contain.output_of(report)
    if printed and verbose:
        out.print("  the code under test printed:")
        out.print(textwrap.indent(printed.rstrip("\n"), "  | "), soft_wrap=True, markup=False)
    elif printed:
        out.print(f"  (the code under test printed {len(printed.splitlines())} lines: see "
                  "--verbose)")
    v = digest.verdict(report)
    word = {"pass": "PASS", "VACUOUS": "VACUOUS (not a pass)", "FAIL": "FAIL",
            "NOT IMPLEMENTED YET": "NOT IMPLEMENTED YET (fill in the TODOs)",
            "rejected": "REJECTED as expected", "MISSED": "MISSED: expected a rejection",
            "WRONG KIND": f"REJECTED, but diagnosed {report.kind!r} where "
                          f"{report.expect_kind!r} was expected"}[v.word]
    out.print(Text(f"verdict: {word}", style="green" if v.good else "bold red"),
              soft_wrap=True)


def equation_line(v: transcription.EquationVerdict) -> Text:
    """``(M8)  page FAIL [sign]  code ok``, with where the page and the code part."""
    word = STATUS_WORD[v.status] + (f" [{v.kind}]" if v.kind else "")
    text = Text(f"  ({v.tag})".ljust(10))
    text.append(f"page {word}", style="red" if v.status in BAD else "")
    if v.code:
        code = STATUS_WORD[v.code] + (f" [{v.code_kind}]" if v.code_kind else "")
        text.append(f"   code {code}", style="red" if v.code in BAD else "")
        if v.after:
            text.append(f" (after the wrong ({v.after}))")
    if v.transcription == "code":
        text.append(f"   the page is right at ({v.tag}), the code is not: look at the code's "
                    f"line tagged ({v.tag})", style="bold")
    elif v.transcription == "page":
        text.append(f"   the code is right at ({v.tag}), the page is not: the equation as "
                    "written differs from what the code computes", style="bold")
    return text


def equations_block(out: Console, report: Report, verbose: bool = False) -> None:
    """The page's equations: every one with ``verbose``, else those that fail or were not
    checked, and those where the page and the code disagree; each with its message."""
    verdicts = transcription.equations(report)
    if not verdicts:
        return
    good, bad, unchecked = transcription.equation_count(report)
    out.print(f"  page: {good} of {len(verdicts)} equations right, {bad} wrong, {unchecked} "
              "not checked", soft_wrap=True)
    for v in verdicts:
        if verbose or v.status != "pass" or v.transcription:
            out.print(equation_line(v), soft_wrap=True)
            if v.message and v.status != "pass":
                out.print(f"            {v.message}", soft_wrap=True, markup=False)


class Display:
    """What ``handgrad check`` prints while it runs and at the end."""

    def __init__(self, names: Sequence[str], verbose: bool = False, lines: bool = True,
                 doing: str = "checking", linear: bool = False, page: bool = False):
        """``linear``: some record has a hand jvp or hvp (the line gets their columns);
        ``page``: some record has a page whose equations are checked (the line gets the page's
        column)."""
        self.out = console()
        self.linear = linear
        self.page = page
        self.verbose = verbose
        self.lines = lines
        self.doing = doing
        self.name_width = max((len(n) for n in names), default=0)
        self.name_width = max(self.name_width, len("derivation"))
        if self.out.is_terminal:
            self.name_width = min(self.name_width, max(self.out.width // 3, 16))
        self.progress: Progress | None = None
        self.task = None
        self.total = len(names)
        self.headed = False

    def __enter__(self) -> Display:
        if self.out.is_terminal and self.total:
            self.progress = Progress(TextColumn(f"[bold]{self.doing}[/] {{task.description}}"),
                                     BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=self.out, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def started(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=name)

    def finished(self, report: Report) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)
        if not self.lines:
            return
        if not self.headed:
            emit(self.out, header_line(self.name_width, self.linear, self.page))
            self.headed = True
        emit(self.out, summary_line(report, self.name_width, self.linear, self.page))

    def close(self, reports: Sequence[Report], elapsed: float, broken: int = 0) -> None:
        """The blocks (every report with ``verbose``, else the unexpected ones) and the
        summary; a run that checked nothing, or met ``broken`` files or records that could not
        be loaded, never reads as a success."""
        self.__exit__()
        for rep in reports:
            if self.verbose or not rep.as_expected:
                self.out.print()
                block(self.out, rep, self.verbose)
        good = sum(r.as_expected for r in reports)
        errata = [r for r in reports if r.expect == "reject"]
        rejected = sum(r.as_expected for r in errata)
        self.out.print()
        known = f"{rejected} of {len(errata)} known errors rejected, " if errata else ""
        errors = f", {broken} not loaded (see the errors)" if broken else ""
        line = (f"{good}/{len(reports)} derivations as expected{errors} ({known}"
                f"{sum(len(r.results) for r in reports)} results, {elapsed:.1f} s)")
        if not reports:
            line = f"nothing was checked{errors}: no derivation to check ({elapsed:.1f} s)"
        success = reports and good == len(reports) and not broken
        self.out.print(Text(line, style="bold green" if success else "bold red"), soft_wrap=True)


def list_records(records) -> None:
    """``handgrad check --list``: name, expectation, what it is, in aligned columns."""
    out = console()
    table = Table(box=None, pad_edge=False, padding=(0, 2), header_style="bold",
                  show_edge=False)
    table.add_column("derivation", no_wrap=True)
    table.add_column("expect", no_wrap=True)
    table.add_column("what", overflow="fold")
    for r in records:
        table.add_row(r.name, r.expect, r.erratum or r.doc)
    emit(out, table)
