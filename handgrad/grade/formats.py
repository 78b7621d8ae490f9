"""What a grading run writes (``handgrad grade``): the formats graders read.

- Gradescope's autograder ``results.json`` (one per submission): a test per record with its
  ``name``, ``score``, ``max_score``, ``output`` (the diagnosis of a record that is not as
  expected) and ``visibility``; the total ``score``.
- JUnit XML: a ``testsuite`` per submission, a ``testcase`` per record, a ``failure`` (wrong
  gradients) or an ``error`` (raised, crashed, timed out, ...) with the diagnosis.
- The CSV/JSON summaries of ``handgrad check --summary-csv/--summary-json`` (same columns, one
  row per submission), plus ``score`` and ``max_score`` in a file of their own
  (:func:`scores_csv`).
- An HTML site: an index of the students with their scores, a page per student listing each
  record's verdict, and the page of each record that is not as expected (the diagnosis the
  student reads to fix the work).

Every format records how the run was contained and what went wrong with the run itself
(:func:`run_notes`): a run graded with ``--uncontained`` (no bubblewrap) says so in the terminal
table, in every ``--json`` row (``"contained": false``), in a ``contained`` column of the CSV/JSON
summaries and of the scores, in the ``output`` and ``extra_data`` of Gradescope's results.json,
in a ``contained`` property of each JUnit suite, and in a banner of every HTML page; the run's
incidents (a staff file or handgrad changed during the run) travel the same ways
(``run_incidents``).
"""

from __future__ import annotations

import csv
import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

from handgrad.grade import Graded
from handgrad.report import Report

Points = Callable[[str], float]


UNCONTAINED = ("UNCONTAINED: graded without bubblewrap (--uncontained); the submissions' code "
               "could reach whatever this machine's user can, and these grades are only as "
               "safe as the container each submission ran in")


def run_notes(g: Graded) -> list[str]:
    """What a reader of any format must be told about the run itself: uncontained, and each
    incident of the run."""
    notes = [] if g.contained else [UNCONTAINED]
    return notes + [f"INCIDENT of the run: {i}" for i in g.run_incidents]


def run_columns(g: Graded) -> dict:
    return {"contained": g.contained, "run_incidents": "; ".join(g.run_incidents)}


def record_output(report: Report, printed: str = "") -> str:
    """What a student reads for one record: the verdict, and for one that is not as expected
    its failing rows and diagnosis; then what the code printed, if anything."""
    text = "PASS" if report.as_expected else report.render(only_failures=True)
    if printed:
        text += "\n\nyour code printed:\n" + printed
    return text


def gradescope(graded: Graded, points: Points, visibility: str = "visible") -> dict:
    tests = []
    for report in graded.reports:
        worth = points(report.derivation)
        tests.append({"name": report.derivation,
                      "score": worth if report.as_expected else 0.0,
                      "max_score": worth,
                      "status": "passed" if report.as_expected else "failed",
                      "output": record_output(report, graded.printed.get(report.derivation, "")),
                      "visibility": visibility})
    for b in graded.broken:
        tests.append({"name": f"records: {Path(b.module).name}", "score": 0.0, "max_score": 0.0,
                      "status": "failed", "output": b.message, "visibility": visibility})
    earned, _ = graded.score(points)
    out = {"score": earned, "visibility": visibility, "stdout_visibility": "hidden",
           "tests": tests, "extra_data": {"contained": graded.contained,
                                          "run_incidents": list(graded.run_incidents)}}
    if run_notes(graded):
        out["output"] = "\n".join(run_notes(graded))
    return out


def write_gradescope(target: Path, graded: Sequence[Graded], points: Points) -> list[Path]:
    """``target`` ending in ``.json``: that file (one submission); else a folder with
    ``<student>/results.json`` per submission."""
    if target.suffix == ".json":
        if len(graded) != 1:
            raise ValueError(f"--gradescope {target}: one results.json holds one submission; "
                             f"give a folder for {len(graded)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(gradescope(graded[0], points), indent=1))
        return [target]
    written = []
    for g in graded:
        path = target / g.student / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gradescope(g, points), indent=1))
        written.append(path)
    return written


def junit(graded: Sequence[Graded], points: Points) -> str:
    suites = ET.Element("testsuites", name="handgrad grade")
    for g in graded:
        failures = sum(r.status == "fail" and not r.as_expected for r in g.reports)
        errors = sum(not r.as_expected for r in g.reports) - failures + len(g.broken)
        earned, possible = g.score(points)
        suite = ET.SubElement(suites, "testsuite", name=g.student,
                              tests=str(len(g.reports) + len(g.broken)), failures=str(failures),
                              errors=str(errors))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="score", value=f"{earned:g}")
        ET.SubElement(props, "property", name="max_score", value=f"{possible:g}")
        ET.SubElement(props, "property", name="contained", value=str(g.contained).lower())
        for incident in g.run_incidents:
            ET.SubElement(props, "property", name="run_incident", value=incident)
        for report in g.reports:
            case = ET.SubElement(suite, "testcase", classname=g.student, name=report.derivation)
            if not report.as_expected:
                tag = "failure" if report.status == "fail" else "error"
                bad = ET.SubElement(case, tag, message=f"{report.status} [{report.kind}]",
                                    type=report.kind or report.status)
                bad.text = record_output(report)
            printed = g.printed.get(report.derivation, "")
            if printed:
                ET.SubElement(case, "system-out").text = printed
        for b in g.broken:
            case = ET.SubElement(suite, "testcase", classname=g.student,
                                 name=f"records: {Path(b.module).name}")
            ET.SubElement(case, "error", message="record file did not load").text = b.message
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


SCORE_FIELDS = ("student", "path", "score", "max_score", "records", "as_expected", "kinds",
                "contained", "run_incidents")


def score_rows(graded: Sequence[Graded], points: Points) -> list[dict]:
    rows = []
    for g in graded:
        earned, possible = g.score(points)
        rows.append({"student": g.student, "path": g.folder, "score": earned,
                     "max_score": possible, "records": len(g.reports),
                     "as_expected": sum(r.as_expected for r in g.reports),
                     "kinds": ";".join(f"{r.derivation}:{r.kind or r.status}"
                                       for r in g.reports if not r.as_expected),
                     **run_columns(g)})
    return rows


def scores_csv(path: Path, graded: Sequence[Graded], points: Points) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SCORE_FIELDS)
        writer.writeheader()
        writer.writerows(score_rows(graded, points))


def verdicts(g: Graded) -> list[dict]:
    """Every row of every record of one submission, as ``handgrad check --json`` gives them:
    what two runs must agree on, byte for byte. Each row says whether the run was contained,
    and carries the run's incidents when there are any."""
    run = {"contained": g.contained}
    if g.run_incidents:
        run["run_incidents"] = list(g.run_incidents)
    return [{**r.as_dict(), "expect": rep.expect, **run} for rep in g.reports
            for r in rep.results]


def _banner(g: Graded) -> str:
    return "".join(f'<p class="bad"><strong>{html.escape(n)}</strong></p>' for n in run_notes(g))


def _verdict_cell(report: Report) -> str:
    if report.as_expected:
        return '<td class="ok">ok</td>'
    return f'<td class="bad">{html.escape(report.status.upper())} [{html.escape(report.kind)}]</td>'


def write_site(out: Path, graded: Sequence[Graded], points: Points) -> Path:
    """``out/index.html`` (students), ``out/<student>/index.html`` (records) and
    ``out/<student>/<record>.html`` for each record that is not as expected."""
    from handgrad.views import html_report

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for g in graded:
        earned, possible = g.score(points)
        folder = out / g.student
        folder.mkdir(exist_ok=True)
        lines = []
        for report in g.reports:
            name = report.derivation
            page = g.pages.get(name)
            link = html.escape(name)
            if page is not None:
                (folder / html_report.filename(name)).write_text(page)
                link = f'<a href="{html_report.filename(name)}">{link}</a>'
            printed = g.printed.get(name, "")
            lines.append(f"<tr><td>{link}</td>{_verdict_cell(report)}"
                         f'<td class="num">{points(name) if report.as_expected else 0:g} / '
                         f"{points(name):g}</td><td><pre>{html.escape(printed[:2000])}</pre>"
                         "</td></tr>")
        broken = "".join(f"<p class=\"bad\">{html.escape(b.message)}</p>" for b in g.broken)
        (folder / "index.html").write_text(html_report.page(
            f"{g.student}: handgrad", '<nav><a href="../index.html">&larr; every student</a>'
            f"</nav>{_banner(g)}<h1>{html.escape(g.student)}: {earned:g} / {possible:g}</h1>"
            f"{broken}"
            "<table><tr><th>record</th><th>verdict</th><th>points</th><th>printed</th></tr>"
            + "".join(lines) + "</table>"))
        bad = ", ".join(html.escape(r.derivation) for r in g.reports if not r.as_expected)
        rows.append(f'<tr><td><a href="{html.escape(g.student)}/index.html">'
                    f"{html.escape(g.student)}</a></td><td class=\"num\">{earned:g} / "
                    f"{possible:g}</td><td>{bad or '-'}</td></tr>")
    index = out / "index.html"
    index.write_text(html_report.page("handgrad grade", (
        f"{_banner(graded[0]) if graded else ''}"
        f"<h1>handgrad grade</h1><p>{len(graded)} submissions.</p>"
        "<table><tr><th>student</th><th>score</th><th>records not as expected</th></tr>"
        + "".join(rows) + "</table>")))
    return index
