"""A report as rich output in a notebook: the body of its report page, without the Markdown,
with the page's styles scoped to it so that the notebook around it keeps its own."""

from __future__ import annotations

import re

from handgrad.discovery import find
from handgrad.report import Report, checked_record
from handgrad.views import html_report
from handgrad.views.evidence import gather

RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")


def scoped_css(css: str, scope: str) -> str:
    """Every rule of ``css`` limited to elements inside ``scope`` (``body`` becomes the scope)."""
    def one(m: re.Match) -> str:
        selectors = []
        for sel in m.group(1).split(","):
            sel = sel.strip()
            selectors.append(scope if sel == "body" else f"{scope} {sel}")
        return f"{','.join(selectors)}{{{m.group(2)}}}"

    return RULE.sub(one, css.replace("\n", ""))


def record_of(report: Report):
    """The record a report checked: the one :func:`handgrad.check` was given, else the
    discovered record of that name (None when there is none)."""
    known = checked_record(report)
    if known is not None:
        return known
    try:
        return find(report.derivation)
    except Exception:  # noqa: BLE001 - no record of that name here: nothing to draw
        return None


def html(report: Report) -> str:
    record = record_of(report)
    evidence = gather(record, report) if record is not None else None
    body = html_report.body(record, report, evidence, with_markdown=False)
    if record is None:
        name = html_report.esc(repr(report.derivation))
        body += (f'<p class="note">No record named {name} is known here, so the curves cannot '
                 "be drawn; handgrad.check(record) keeps it.</p>")
    style = scoped_css(html_report.CSS, ".handgrad-report")
    return f'<div class="handgrad-report"><style>{style}</style>{body}</div>'
