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

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.pages import EquationResult, check_page, page_of
from handgrad.pages.bind import reference_values

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
