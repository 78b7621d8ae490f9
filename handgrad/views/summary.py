"""One row per record path (a student's folder): what an instructor needs from a class's
submissions, as CSV or JSON (``handgrad check --path students/* --summary-csv FILE``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence

from handgrad.discovery import Broken
from handgrad.record import Derivation
from handgrad.report import Report

FIELDS = ("path", "records", "as_expected", "passed", "rejected_as_expected", "failed",
          "errors", "timeouts", "vacuous", "broken_files", "kinds", "problems")


def rows(sources: Sequence[tuple[str, list[Derivation], list[Broken]]],
         chosen: Sequence[tuple[str, Derivation]], reports: Sequence[Report]) -> list[dict]:
    """Per path: the counts of its checked records by outcome, the kinds of the unexpected
    failures, and its broken files (an import error in one folder never stops the others)."""
    by_path: dict[str, list[Report]] = {}
    for (path, _), report in zip(chosen, reports):
        by_path.setdefault(path, []).append(report)
    out = []
    for path, _, broken in sources:
        reps = by_path.get(path, [])
        unexpected = [r for r in reps if not r.as_expected]
        out.append({
            "path": path,
            "records": len(reps),
            "as_expected": sum(r.as_expected for r in reps),
            "passed": sum(r.passed for r in reps if r.expect == "pass"),
            "rejected_as_expected": sum(r.as_expected for r in reps if r.expect == "reject"),
            "failed": sum(r.status == "fail" for r in unexpected),
            "errors": sum(r.status == "error" for r in unexpected),
            "timeouts": sum(any(x.kind == "timeout" for x in r.results) for r in reps),
            "vacuous": sum(r.status == "vacuous" for r in reps),
            "broken_files": len(broken),
            "kinds": ";".join(f"{r.derivation}:{r.kind}" for r in unexpected),
            "problems": ";".join(b.message.splitlines()[0] for b in broken),
        })
    return out


def write(sources, chosen, reports, csv_path: str | None, json_path: str | None,
          extra: Sequence[dict] | None = None) -> None:
    """The rows as CSV and/or JSON; ``extra``: more columns, one dict per source, in order."""
    table = rows(sources, chosen, reports)
    fields = list(FIELDS)
    for row, more in zip(table, extra or []):
        row.update(more)
        fields += [k for k in more if k not in fields]
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(table)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(table, f, indent=1)
