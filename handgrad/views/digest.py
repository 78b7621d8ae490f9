"""A report boiled down for people: the verdict in words, the worst figure per oracle, and the
tensor x oracle matrix. The terminal, the HTML report and the notebook view all show these."""

from __future__ import annotations

import math
from dataclasses import dataclass

from handgrad.report import STATUS_WORD, Report, Result
from handgrad.transcription import equation_count

# (heading, checks, dtype): the columns of the one-line summary. The forward's values against
# the reference have a column of their own, so that the autograd column is the gradients'
# error; the float32 column is the whole float32 pass (values and gradients).
ORACLE_COLUMNS = (("forward", ("forward",), "float64"),
                  ("autograd", ("autograd",), "float64"),
                  ("float32", ("autograd", "forward"), "float32"),
                  ("fd", ("fd",), "float64"),
                  ("c-step", ("complex-step",), "float64"),
                  ("taylor", ("taylor",), "float64"),
                  ("descent", ("descent",), "float64"),
                  ("jvp", ("jvp", "jvp-fd", "jvp-complex-step", "dot-product"), "float64"),
                  ("hvp", ("hvp", "hvp-fd", "symmetry"), "float64"),
                  ("page", ("equation",), "float64"))
# The columns shown only where some record has a hand jvp or hvp (keeping the line short). The
# linearity rows of both sit in the tensor x oracle matrix, not here: a column cannot tell the
# jvp's from the hvp's.
LINEAR_HEADINGS = ("jvp", "hvp")
# The page column (its equations passing / checked) is shown only where some record has a page.
PAGE_HEADINGS = ("page",)


def columns(linear: bool, page: bool = False) -> tuple:
    """ORACLE_COLUMNS, less the jvp and hvp columns unless ``linear``, less the page column
    unless ``page``."""
    return tuple(c for c in ORACLE_COLUMNS if (linear or c[0] not in LINEAR_HEADINGS)
                 and (page or c[0] not in PAGE_HEADINGS))


def has_page(report: Report) -> bool:
    """Whether the report holds results of a page's equations."""
    return any(r.check == "equation" for r in report.results)


def has_linear(report: Report) -> bool:
    """Whether the report holds results of a hand jvp or hvp."""
    return any(r.check in ("jvp", "hvp") for r in report.results)


# The columns of the tensor x oracle matrix, in the order the engine runs them.
MATRIX_COLUMNS = (("contract", "float64"), ("forward", "float64"), ("autograd", "float64"),
                  ("fd", "float64"), ("complex-step", "float64"), ("taylor", "float64"),
                  ("descent", "float64"), ("jvp", "float64"), ("jvp-fd", "float64"),
                  ("jvp-complex-step", "float64"), ("dot-product", "float64"), ("hvp", "float64"),
                  ("hvp-fd", "float64"), ("symmetry", "float64"), ("linearity", "float64"),
                  ("taylor2", "float64"), ("contract", "float32"), ("forward", "float32"),
                  ("autograd", "float32"), ("jvp", "float32"), ("hvp", "float32"),
                  ("coverage", "float64"), ("equation", "float64"))
# Which status a cell shows when its cases disagree: the most alarming.
SEVERITY = ("error", "fail", "vacuous", "unreliable", "warning", "skipped", "pass")


@dataclass(frozen=True)
class Verdict:
    word: str  # what the line says
    good: bool  # as expected
    detail: str = ""  # the kind, or what was expected


def verdict(report: Report) -> Verdict:
    kind = report.kind
    if report.expect == "reject":
        if report.as_expected:
            return Verdict("rejected", True, kind)
        if report.rejected:
            return Verdict("WRONG KIND", False, f"rejected as {kind!r}, expected "
                                                f"{report.expect_kind!r}")
        return Verdict("MISSED", False, "expected a rejection")
    if kind == "not-implemented":
        return Verdict("NOT IMPLEMENTED YET", False, "fill in the TODOs")
    if report.status == "vacuous":
        return Verdict("VACUOUS", False, "a gradient was never exercised (not a pass)")
    if report.passed:
        notes = sorted({r.status for r in report.results} & {"unreliable", "warning"})
        return Verdict("pass", True, ", ".join(STATUS_WORD[s] for s in notes))
    return Verdict("FAIL", False, kind)


def case_count(report: Report) -> int:
    return len({(r.case, r.data_seed) for r in report.results if r.check != "coverage"})


def worst_status(results: list[Result]) -> str:
    statuses = {r.status for r in results}
    return next(s for s in SEVERITY if s in statuses) if statuses else ""


def figure(results: list[Result]) -> str:
    """The worst figure of some rows: the largest relative error, or for the Taylor test the
    smallest fitted slope ("-" when none)."""
    if not results:
        return ""
    if results[0].check in ("taylor", "taylor2"):
        slopes = [r.max_rel for r in results if math.isfinite(r.max_rel)]
        return f"slope {min(slopes):.2f}" if slopes else "-"
    worst = [r.max_rel for r in results if not math.isnan(r.max_rel)]
    return f"{max(worst):.1e}" if worst else "-"


def oracle_cells(report: Report, linear: bool = True, page: bool = False
                 ) -> list[tuple[str, str, str]]:
    """Per column (see :func:`columns`): (heading, figure, worst status); empty figure where it
    did not run. The page's figure is its equations passing / checked."""
    cells = []
    for heading, checks, dtype in columns(linear, page):
        rows = [r for r in report.results if r.check in checks and r.dtype == dtype]
        ran = [r for r in rows if r.status != "skipped"]
        if heading == "page":
            good, bad, _ = equation_count(report)
            cells.append((heading, f"{good}/{good + bad}" if rows else "", worst_status(ran)))
            continue
        cells.append((heading, figure(ran) if ran else ("skip" if rows else ""),
                      worst_status(rows)))
    return cells


@dataclass(frozen=True)
class Cell:
    status: str
    figure: str
    message: str  # the message of the worst row (its first case)


def matrix(report: Report, tensor_order: tuple[str, ...] = ()
           ) -> tuple[list[tuple[str, str]], list[tuple[str, str, dict]]]:
    """(columns, rows): columns are the (check, dtype) pairs present; each row is (tensor, tag,
    {column: Cell}), tensors in ``tensor_order`` first (the output, then backward order)."""
    columns = [c for c in MATRIX_COLUMNS
               if any((r.check, r.dtype) == c for r in report.results)]
    tensors: list[str] = []
    for t in ("(output)", *tensor_order, *(r.tensor for r in report.results)):
        if t not in tensors and any(r.tensor == t for r in report.results):
            tensors.append(t)
    rows = []
    for t in tensors:
        cells, tag = {}, ""
        for c in columns:
            rs = [r for r in report.results if r.tensor == t and (r.check, r.dtype) == c]
            if not rs:
                continue
            status = worst_status(rs)
            first = next(r for r in rs if r.status == status)
            tag = tag or first.tag
            text = (f"{first.live:.0%} live" if c[0] == "coverage" and math.isfinite(first.live)
                    else figure([r for r in rs if r.status != "skipped"]))
            cells[c] = Cell(status, text, first.message)
        rows.append((t, tag, cells))
    return columns, rows

