"""The equation oracle: each tagged equation of the record's derivation page evaluated on the
case (float64) and judged on its own, its right side from the reference's values and autograd's
gradients, its left side against autograd or the reference (see :mod:`handgrad.pages`).

Rows have ``check="equation"``, ``tag`` the equation's tag and ``tensor`` its left side as
written. A failing equation is ``fail`` with the diagnosis kind (``shape`` where the right side
does not type-check); an equation outside the page language is ``skipped`` with
``kind="not-checkable"`` and the construct named, so the record's line counts it unchecked;
another variant's equation is ``skipped`` with ``kind="variant"``."""

from __future__ import annotations

import dataclasses

from handgrad.autograd import to_tensors
from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.pages import EquationResult, check_page, page_of
from handgrad.pages.bind import reference_values
from handgrad.report import Result

STATUS = {"pass": "pass", "fail": "fail", "not-checkable": "skipped", "skipped": "skipped"}


def run_equations(run: CaseRun) -> None:
    record = run.record
    try:
        page = page_of(record)
    except Exception as exc:  # noqa: BLE001 - a page that does not load is an error row
        run.result("equation", "(page)", "error", kind="page-error",
                   message=f"the page of {record.name!r} does not load: {exc}; fix the page "
                           "or the record's page field")
        return
    if page is None or not page.equations:
        return
    values = reference_values(record, run.inputs, run.dout)
    for e in check_page(record, run.case, page, values=values):
        row(run, e)


def row(run: CaseRun, e: EquationResult) -> None:
    kind = e.kind
    if e.status == "not-checkable":
        kind = "not-checkable"
    elif e.status == "skipped":
        kind = "variant"
    where = f" (line {e.line}" + (f", cell {e.cell}" if e.cell is not None else "") + ")"
    message = (e.message + where) if e.message else ""
    r = run.result("equation", e.lhs or f"({e.tag})", STATUS[e.status], kind=kind,
                   message=message, max_abs=e.max_abs, max_rel=e.max_rel,
                   worst_index=e.worst_index, hand_value=e.page_value, ref_value=e.ref_value,
                   rtol=e.rtol, atol=e.atol)
    run.results[-1] = dataclasses.replace(r, tag=e.tag)


ORACLE = Oracle("equation", "the derivation page's equations", run_equations,
                wanted=lambda run: "equation" in run.checks and run.record.reference is not None
                and bool(getattr(run.record, "page", "") or run.record.doc),
                fix="fix the page or the record's symbols")


def nothing_checked(record, page) -> str:
    """The message of a record with no backward whose page has no tagged equation: a page-only
    record with nothing on its page to check is an error, never a pass."""
    where = "no page" if page is None else f"no tagged equation in {page.path}"
    return (f"{record.name!r} has no backward and {where}: nothing of it was checked; tag the "
            "page's display equations ($$ ... \\tag{1} $$)")


def page_only(record, case) -> list[Result]:
    """The rows of a record with a page and a reference but no code: every tagged equation of
    the page judged on the case (float64), and a row saying what needs the code."""
    from handgrad.cases import build_inputs, upstream

    base = {"derivation": record.name, "case": case.describe(), "data_seed": case.data_seed,
            "dtype": "float64"}
    try:
        page = page_of(record)
        inputs = build_inputs(record, case, "float64")
        out = record.reference(**{k: v for k, v in to_tensors(record, inputs, "float64").items()})
        out = out[0] if isinstance(out, tuple) else out
        dout = upstream(tuple(out.shape), case)
        values = reference_values(record, inputs, dout)
        found = check_page(record, case, page, values=values) if page else []
    except Exception as exc:  # noqa: BLE001 - a page or reference that fails is an error row
        return [Result(**base, check="equation", tensor="(page)", status="error",
                       kind="page-error", message=f"checking the page of {record.name!r} raised "
                       f"{type(exc).__name__}: {exc}; fix the page, the reference or the "
                       "record's symbols")]
    if not found:
        return [Result(**base, check="equation", tensor="(page)", status="error",
                       kind="page-error", message=nothing_checked(record, page))]
    rows = [Result(**base, check="contract", tensor="(code)", status="skipped",
                   message="no hand code yet: the page's equations are checked alone; the "
                           "contract, autograd, finite differences and the Taylor test need "
                           "forward and backward")]
    for e in found:
        kind = {"not-checkable": "not-checkable", "skipped": "variant"}.get(e.status, e.kind)
        where = f" (line {e.line}" + (f", cell {e.cell}" if e.cell is not None else "") + ")"
        rows.append(Result(**base, check="equation", tensor=e.lhs or f"({e.tag})",
                           status=STATUS[e.status], kind=kind, tag=e.tag,
                           message=(e.message + where) if e.message else "",
                           max_abs=e.max_abs, max_rel=e.max_rel, worst_index=e.worst_index,
                           hand_value=e.page_value, ref_value=e.ref_value, rtol=e.rtol,
                           atol=e.atol))
    return rows
