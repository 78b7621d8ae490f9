"""The static report: an index of every derivation with its verdict, and a page per derivation
(the tensor x oracle table, the Taylor and finite-difference curves, heatmaps of what is wrong,
the record's figures, and its Markdown with each equation anchored). Every page is one
self-contained HTML file: styles inline, plots inline as SVG, no script, nothing fetched.

The same body is what :meth:`handgrad.Report._repr_html_` shows in a notebook."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from handgrad import transcription
from handgrad.record import Derivation
from handgrad.report import STATUS_WORD, Report, Result, reproduce_command
from handgrad.tolerances import IDENTITY_RTOL
from handgrad.views import digest, plots
from handgrad.views.evidence import Evidence
from handgrad.views.markdown_html import anchor, doc_path, render

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;
padding:1em 1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.5em;margin:.3em 0}
h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}
th,td{border:1px solid #ddd;padding:2px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass,.ok{background:#e7f6e9}.fail,.error,.vacuous,.bad{background:#fde2e1}
.unreliable,.warning{background:#fff4d6}.skipped{background:#f0f0f0;color:#777}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:.8em;
vertical-align:middle}.badge.good{background:#cdeccf}.badge.bad{background:#f9c9c6}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap;font-size:12.5px}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
img.plot{max-width:100%;height:auto;border:1px solid #eee}
.eq{display:flex;align-items:center;margin:.4em 0;padding:.25em .6em;background:#f7f7fb;
border-left:3px solid #99c}.eq math{flex:1;font-size:1.1em}
.eq:target{background:#fff3b0}.eqtag{margin-left:1em;color:#555}
.eq.pass{border-left-color:#3a3}.eq.fail,.eq.error{border-left:6px solid #c22}
.eq.skipped{border-left-color:#aaa}.eqverdict{margin-left:1em;flex:0 1 45%;font-size:.85em}
.eq.fail .eqword,.eq.error .eqword{color:#a00;font-weight:bold}.eqcode{margin-left:.6em}
.eqnote{display:block;font-weight:bold}.eqmessage{display:block;color:#444}
code.math-error{color:#a00;background:#fdd}.note{color:#555;font-style:italic}
nav{font-size:.9em;margin-bottom:.5em}.doc{max-width:900px}
.doc h1{font-size:1.25em}.doc h2{font-size:1.1em}.doc h3{font-size:1em}
.diagnosis{flex:1 1 400px;min-width:0}
.heatmaps{flex:0 1 620px;display:flex;flex-direction:column;gap:.6em}
"""


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def esc(text: object) -> str:
    return html.escape(str(text))


def badge(report: Report) -> str:
    v = digest.verdict(report)
    detail = f" [{v.detail}]" if v.detail else ""
    return f'<span class="badge {"good" if v.good else "bad"}">{esc(v.word + detail)}</span>'


def tag_link(tag: str, tags_in_doc: set[str]) -> str:
    if not tag:
        return ""
    if tag in tags_in_doc:
        return f' <a href="#{anchor(tag)}">({esc(tag)})</a>'
    return f" ({esc(tag)})"


def matrix_table(record: Derivation | None, report: Report, tags_in_doc: set[str]) -> str:
    order = (*record.intermediates, *record.differentiable) if record else ()
    columns, rows = digest.matrix(report, order)
    head = "".join(f"<th>{esc(c)}{' ' + esc(d) if d != 'float64' else ''}</th>"
                   for c, d in columns)
    body = []
    for tensor, tag, cells in rows:
        tds = []
        for c in columns:
            cell = cells.get(c)
            if cell is None:
                tds.append("<td></td>")
                continue
            word = STATUS_WORD[cell.status]
            tds.append(f'<td class="{cell.status}" title="{esc(cell.message)}">{esc(word)} '
                       f"{esc(cell.figure)}</td>")
        body.append(f"<tr><th>{esc(tensor)}{tag_link(tag, tags_in_doc)}</th>{''.join(tds)}</tr>")
    return (f'<table class="matrix"><tr><th>tensor</th>{head}</tr>{"".join(body)}</table>'
            '<p class="note">Each cell: the most alarming verdict over the cases and the worst '
            "relative error (the smallest slope for the Taylor test, the share of live entries "
            "for coverage); hover for the message.</p>")


def _num(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:.2e}"


def results_table(results: list[Result]) -> str:
    head = ("case", "seed", "dtype", "check", "tensor", "max abs", "max rel", "worst index",
            "hand", "ref", "verdict", "message")
    rows = []
    for r in results:
        verdict = STATUS_WORD[r.status] + (f" [{r.kind}]" if r.kind else "")
        cells = (esc(r.case), esc(r.data_seed), esc(r.dtype), esc(r.check),
                 esc(r.tensor + (f" ({r.tag})" if r.tag else "")), _num(r.max_abs),
                 _num(r.max_rel), esc(list(r.worst_index)) if r.worst_index else "-",
                 _num(r.hand_value), _num(r.ref_value), esc(verdict), esc(r.message))
        tds = "".join(f'<td class="{r.status}">{c}</td>' if i == 10 else f"<td>{c}</td>"
                      for i, c in enumerate(cells))
        rows.append(f"<tr>{tds}</tr>")
    return (f'<table class="results"><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>'
            f'{"".join(rows)}</table>')


def diagnosis(report: Report, path: str = "") -> str:
    """The failure block: the most telling case in full, the localisation and the reproduce
    command, then the messages of its failing rows."""
    telling = report.telling_case()
    lines = []
    if telling is not None:
        case, seed = telling
        if not any(case in d for d in report.diagnoses):
            lines.append(f"case {case}, data seed {seed}")
        if not any("reproduce:" in d for d in report.diagnoses):
            lines.append("reproduce: " + reproduce_command(report.derivation, case, seed, path))
    lines += [d.strip() for d in report.diagnoses]
    seen: set[tuple[str, str]] = set()
    for r in report.failures:
        if (r.case, r.data_seed) != telling and r.status != "vacuous":
            continue
        if r.message and (r.tensor, r.message) not in seen and len(seen) < 8:
            if not seen:
                lines.append("")
            seen.add((r.tensor, r.message))
            lines.append(f"{r.check} {r.dtype} {r.tensor}: {r.message}")
    return f"<pre>{esc(chr(10).join(lines))}</pre>"


def _drawn(draw, *args) -> str:
    """One plot, or a note saying why it could not be drawn: a picture never takes a page down."""
    try:
        return draw(*args)
    except Exception as exc:  # noqa: BLE001
        return f'<p class="note">drawing {draw.__name__} raised {esc(type(exc).__name__)}: ' \
               f"{esc(exc)}</p>"


def plots_of(evidence: Evidence | None) -> tuple[str, str, str]:
    """(heatmaps of failing tensors, the Taylor and finite-difference curves, the record's
    figures) as HTML."""
    if evidence is None:
        return "", "", ""
    diffs = "".join(_drawn(plots.diff, d) for d in evidence.diffs)
    curves = []
    if evidence.taylor is not None:
        curves.append(_drawn(plots.taylor, evidence.taylor))
    if evidence.sweeps:
        curves.append(_drawn(plots.fd_sweep, evidence.sweeps))
    if evidence.taylor2 is not None:
        curves.append(_drawn(plots.taylor, evidence.taylor2))
    for i in evidence.identities:
        curves.append(_drawn(plots.identity, i.title, i.xlabel, i.ylabel, i.x, i.y,
                             i.magnitude, IDENTITY_RTOL))
    figures = "".join(_drawn(plots.pair, f) for f in evidence.figures)
    return diffs, "".join(curves), figures


@lru_cache(maxsize=32)
def _markdown(path: Path) -> tuple[str, frozenset[str]]:
    body, tags = render(path.read_text())
    return body, frozenset(tags)


def markdown_of(record: Derivation | None, report: Report) -> tuple[str, frozenset[str]]:
    """The record's page as HTML, each checked equation marked with its verdict."""
    path = doc_path((record.page if record else "") or report.doc, record.origin if record else "")
    if path is None:
        return "", frozenset()
    verdicts = {v.tag: v for v in transcription.equations(report)}
    try:
        if verdicts:
            body, tags = render(path.read_text(), verdicts)
            return body, frozenset(tags)
        return _markdown(path.resolve())
    except OSError:
        return "", frozenset()


def body(record: Derivation | None, report: Report, evidence: Evidence | None,
         path: str = "", with_markdown: bool = True) -> str:
    """The HTML of one derivation (without the page around it)."""
    markdown, tags = markdown_of(record, report) if with_markdown else ("", frozenset())
    diffs, curves, figures = plots_of(evidence)
    out = [f"<h1>{esc(report.derivation)} {badge(report)}</h1>"]
    if report.erratum:
        out.append(f"<p>Transcribes a known error: {esc(report.erratum)}</p>")
    out.append(f"<p>{digest.case_count(report)} cases, {len(report.results)} results"
               + (f"; pictures from case {esc(evidence.case)}, data seed {evidence.data_seed}"
                  if evidence and evidence.case else "") + ".</p>")
    if report.failures:
        out.append('<h2 id="diagnosis">Diagnosis</h2><div class="plots"><div class="diagnosis">'
                   f'{diagnosis(report, path)}</div><div class="heatmaps">{diffs}</div></div>')
    out.append('<h2 id="table">Per tensor and oracle</h2>' + matrix_table(record, report, tags))
    if curves:
        out.append(f'<h2 id="curves">Taylor test and finite differences</h2>'
                   f'<div class="plots">{curves}</div>')
    if figures:
        out.append(f'<h2 id="figures">Figures</h2><div class="plots">{figures}</div>')
    if evidence and evidence.notes:
        out.append("".join(f'<p class="note">{esc(n)}</p>' for n in evidence.notes))
    if markdown:
        out.append(f'<h2 id="derivation">The derivation</h2><div class="doc">{markdown}</div>')
    out.append(f"<details><summary>Every result ({len(report.results)} rows)</summary>"
               f"{results_table(report.results)}</details>")
    return "\n".join(out)


def filename(name: str) -> str:
    """A page's file name: the derivation's name, kept to safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe}.html"


def index(reports: Iterable[Report], seconds: float, extra: str = "") -> str:
    reports = list(reports)
    good = sum(digest.verdict(r).good for r in reports)
    linear = any(digest.has_linear(rep) for rep in reports)
    pages = any(digest.has_page(rep) for rep in reports)
    heads = [h for h, _, _ in digest.columns(linear, pages)]
    rows = []
    for rep in reports:
        v = digest.verdict(rep)
        cells = "".join(f'<td class="num {status}">{esc(fig)}</td>'
                        for _, fig, status in digest.oracle_cells(rep, linear, pages))
        about = rep.erratum or ""
        rows.append(f'<tr><td><a href="{filename(rep.derivation)}">{esc(rep.derivation)}</a>'
                    f'</td><td>{esc(rep.expect)}</td><td class="{"ok" if v.good else "bad"}">'
                    f'{esc(v.word)}</td><td>{esc(v.detail)}</td>'
                    f'<td class="num">{digest.case_count(rep)}</td>{cells}'
                    f"<td>{esc(about)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("derivation", "expect", "verdict", "kind / note",
                                             "cases", *heads, "transcribes"))
    return page("handgrad report", (
        f"<h1>handgrad report</h1><p><b>{good}/{len(reports)} derivations as expected</b> "
        f"({sum(len(r.results) for r in reports)} results; report built in {seconds:.1f} s)."
        f"{extra}</p>"
        "<p class=\"note\">Figures per oracle: the worst relative error over every case and "
        "tensor; for the Taylor test the smallest fitted slope (2: right, 1: wrong).</p>"
        f'<table class="index"><tr>{head}</tr>{"".join(rows)}</table>'))


def derivation_page(record: Derivation | None, report: Report, evidence: Evidence | None,
                    path: str = "", note: str = "") -> str:
    nav = '<nav><a href="index.html">&larr; every derivation</a></nav>'
    extra = f'<p class="note">{esc(note)}</p>' if note else ""
    return page(f"{report.derivation}: handgrad",
                nav + extra + body(record, report, evidence, path))


def bench_groups(data: dict) -> list[tuple[str, float, float]]:
    """(group, hand median, autograd median) in seconds for every group of a pytest-benchmark
    JSON that holds both (a benchmark is the hand or the autograd side by its test's name)."""
    groups: dict[str, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        side = ("hand" if "hand" in bench["name"] else
                "autograd" if "autograd" in bench["name"] else None)
        if side:
            groups.setdefault(bench.get("group") or bench["name"], {})[side] = \
                float(bench["stats"]["median"])
    return [(g, t["hand"], t["autograd"]) for g, t in groups.items()
            if "hand" in t and "autograd" in t]


def bench_page(path: Path) -> str:
    data = json.loads(Path(path).read_text())
    groups = bench_groups(data)
    if not groups:
        raise ValueError("no benchmark group holds both a hand and an autograd benchmark")
    rows = "".join(f"<tr><td>{esc(g)}</td><td class=\"num\">{h * 1e3:.3f}</td>"
                   f"<td class=\"num\">{a * 1e3:.3f}</td><td class=\"num\">{h / a:.2f}</td></tr>"
                   for g, h, a in groups)
    machine = data.get("machine_info", {})
    where = " ".join(str(machine.get(k, "")) for k in ("node", "processor", "python_version"))
    return page("handgrad benchmarks", (
        '<nav><a href="index.html">&larr; every derivation</a></nav>'
        f"<h1>Benchmarks: hand against autograd</h1><p>{esc(Path(path).name)}, "
        f"{esc(data.get('datetime', ''))} {esc(where)}. Medians of pytest-benchmark, hand "
        "(NumPy forward and backward) and autograd (torch forward and "
        "<code>torch.autograd.grad</code>) side by side in one run; ratio = hand / autograd "
        "(below 1: the hand code is faster).</p>"
        f"{plots.bench(groups)}"
        "<table><tr><th>group</th><th>hand (ms)</th><th>autograd (ms)</th><th>ratio</th></tr>"
        f"{rows}</table>"))
