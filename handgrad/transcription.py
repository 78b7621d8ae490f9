"""Where a page and its transcription part: each tagged equation's verdict next to the code's
verdict at the same tag, and the line of the code that carries the tag.

A record with a page (``page=``) is checked twice at each tag: the equation as written
(``check == "equation"``) and the hand backward's gradient the record's ``tags`` give that tag
(the autograd check). Where one is right and the other wrong, the error is in the transcription:
:func:`notes` says so, naming the code's line with the tag comment (``# (M8)``) or the page's
equation.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from dataclasses import dataclass

from handgrad.record import Derivation
from handgrad.report import PASSING, Report

# Which status an equation shows when its cases disagree: the most alarming.
SEVERITY = ("error", "fail", "vacuous", "unreliable", "warning", "skipped", "pass")
CODE_CHECKS = ("autograd", "forward")
TAG_COMMENT = re.compile(r"#.*?\(([^()]+)\)")


def worst_status(results) -> str:
    statuses = {r.status for r in results}
    return next(s for s in SEVERITY if s in statuses) if statuses else ""


@dataclass(frozen=True)
class EquationVerdict:
    """One tagged equation of a page, over every case: its worst status, with the kind and
    message of its first row of that status; ``code`` and ``code_kind`` the same for the code's
    rows of that tag (the hand backward's gradient, against autograd in float64), "" where the
    record has no code for the tag. ``after``: the tag of an earlier wrong step of the code
    (in the order the backward computes its gradients), whose wrong gradient this step reads:
    its own line may be right."""

    tag: str
    status: str
    kind: str
    message: str
    code: str = ""
    code_kind: str = ""
    after: str = ""

    @property
    def transcription(self) -> str:
        """"code" where the page is right and the code's first wrong step is at this tag,
        "page" where the code is right and the page wrong, "" otherwise."""
        page_ok, code_ok = self.status in PASSING, self.code in PASSING
        if not self.code or self.status in ("skipped", "error") or page_ok == code_ok:
            return ""
        if page_ok and self.after:
            return ""
        return "code" if page_ok else "page"


def equations(report: Report) -> list[EquationVerdict]:
    """The page's equations in the order of their first result, each with its code's verdict
    (see :class:`EquationVerdict`)."""
    # An equation of another variant (the L2 loss's on a cross-entropy record) is none of this
    # record's.
    # A row without a tag is the page's as a whole (it did not load): the block shows its
    # message, and no equation is judged.
    tags = list(dict.fromkeys(r.tag for r in report.results if r.check == "equation"
                              and r.kind != "variant" and r.tag))
    # The code's steps in the order of its autograd rows (the intermediates nearest the loss
    # first, as the backward computes them): the first wrong one is where the code goes wrong.
    wrong = [r.tag for r in report.results if r.check == "autograd" and r.dtype == "float64"
             and r.tag and r.status in ("fail", "error")]
    first_wrong = wrong[0] if wrong else ""
    out = []
    for tag in tags:
        rows = [r for r in report.results if r.check == "equation" and r.tag == tag
                and r.kind != "variant"]
        status = worst_status(rows)
        first = next(r for r in rows if r.status == status)
        code = [r for r in report.results if r.check in CODE_CHECKS and r.dtype == "float64"
                and r.tag == tag]
        code_status = worst_status(code)
        code_first = next((r for r in code if r.status == code_status), None)
        after = first_wrong if code_status == "fail" and tag != first_wrong else ""
        out.append(EquationVerdict(tag, status, first.kind, first.message, code_status,
                                   code_first.kind if code_first else "", after))
    return out


def equation_count(report: Report) -> tuple[int, int, int]:
    """(passing, failing, not checked) equations of the report's page."""
    verdicts = equations(report)
    good = sum(v.status in PASSING and v.status != "skipped" for v in verdicts)
    unchecked = sum(v.status == "skipped" for v in verdicts)
    return good, len(verdicts) - good - unchecked, unchecked


def tagged_lines(fn) -> dict[str, tuple[str, int, str]]:
    """Tag -> (file, line number, line) of the first line of ``fn``'s source whose comment cites
    the tag: ``dW2 = da2.T @ z + lam * W2    # (M8)``; a comment may cite several,
    ``# (M8, M12)``. Empty where the source cannot be read (a builtin, a lambda in a REPL)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = inspect.unwrap(fn)
    try:
        lines, first = inspect.getsourcelines(fn)
        path = inspect.getsourcefile(fn) or ""
    except (OSError, TypeError):
        return {}
    out: dict[str, tuple[str, int, str]] = {}
    for i, line in enumerate(lines):
        for cited in TAG_COMMENT.findall(line):
            for tag in (t.strip() for t in cited.split(",")):
                out.setdefault(tag, (path, first + i, line.strip()))
    return out


def _shown(path: str) -> str:
    """A path under the working directory relative to it (as the user typed it)."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:  # another drive
        return path


def notes(record: Derivation, report: Report) -> list[str]:
    """One line per tag where the page and the code disagree, pointing at the side that is
    wrong: the code's line with the tag comment, or the page's equation."""
    verdicts = [v for v in equations(report) if v.transcription]
    if not verdicts:
        return []
    lines = tagged_lines(record.backward) if record.backward is not None else {}
    out = []
    for v in verdicts:
        if v.transcription == "code":
            later = [w.tag for w in equations(report) if w.after == v.tag and w.status in PASSING]
            where = lines.get(v.tag)
            at = (f"{_shown(where[0])}:{where[1]}: {where[2]}" if where
                  else f"no line of the backward cites ({v.tag}) in a comment")
            out.append(f"  transcription: ({v.tag}) is right on the page and wrong in the code "
                       f"[{v.code_kind}]: {at}" + (
                           f"; the code's {', '.join(f'({t})' for t in later)} read its "
                           "gradient and are wrong after it" if later else ""))
        else:
            out.append(f"  transcription: the code is right at ({v.tag}) and the page is not "
                       f"[{v.kind}]: the equation as written is not what the code computes")
    return out
