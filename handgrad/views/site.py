"""Building the static report: one check per derivation (or the reports of a check just run),
one re-run of the case each page draws, the pages written into a folder.

Derivations are drawn in worker processes when more than one job is asked for. A worker is a
fresh interpreter (spawned: torch's thread pools do not survive a fork) that discovers the same
records by path and is handed names, never records (they hold functions)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from handgrad.check import check
from handgrad.record import Derivation
from handgrad.report import Report
from handgrad.views import html_report
from handgrad.views.evidence import gather
from handgrad.views.markdown_html import doc_filename, doc_path, render

_WORKER_RECORDS: dict[str, Derivation] = {}


# Each worker imports torch and every record (a few hundred MB): more than 8 of them would cost
# more memory than the 93 pages of this repository save in time.
MAX_JOBS = 8


def default_jobs() -> int:
    """One worker per core this process may use, at most MAX_JOBS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


def draw(record: Derivation, report: Report | None, seed: int = 0, cases: int = 4,
         path: str = "") -> tuple[Report, str]:
    """(the report, its page): checks ``record`` unless ``report`` is given, then re-runs the
    one case the page draws."""
    if report is None:
        report = check(record, seed, cases)
    evidence = gather(record, report)
    return report, html_report.derivation_page(record, report, evidence, path)


def _init_worker(paths: list[str] | None) -> None:
    import torch

    from handgrad.discovery import discover

    torch.set_num_threads(1)
    records, _ = discover(paths)
    _WORKER_RECORDS.update({r.name: r for r in records})


def _draw_in_worker(name: str, report: Report | None, seed: int, cases: int,
                    path: str) -> tuple[Report, str]:
    return draw(_WORKER_RECORDS[name], report, seed, cases, path)


def build(out: Path, records: Sequence[Derivation], reports: Sequence[Report] | None = None, *,
          seed: int = 0, cases: int = 4, jobs: int = 1, paths: list[str] | None = None,
          started: Callable[[str], None] | None = None,
          finished: Callable[[Report], None] | None = None, seconds: float = 0.0
          ) -> list[Report]:
    """Write ``out/index.html`` and a page per record; returns the reports in record order.

    ``reports`` (same order as ``records``) are reused instead of checking again. With
    ``jobs`` > 1 the pages are drawn in that many processes, which find the records again from
    ``paths`` (as the command line was given them). A record that cannot be drawn still gets
    its page, with the reason. ``seconds`` already spent (a check run before) count in the
    time the index gives."""
    out.mkdir(parents=True, exist_ok=True)
    given = list(reports) if reports is not None else [None] * len(records)
    path = paths[0] if paths and len(paths) == 1 else ""
    t0 = time.perf_counter()
    done: dict[str, tuple[Report, str]] = {}

    def keep(record: Derivation, result: tuple[Report, str]) -> None:
        done[record.name] = result
        (out / html_report.filename(record.name)).write_text(result[1])
        if finished is not None:
            finished(result[0])

    if jobs <= 1 or len(records) <= 1:
        for record, report in zip(records, given):
            if started is not None:
                started(record.name)
            keep(record, _safe_draw(record, report, seed, cases, path))
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                                 initializer=_init_worker, initargs=(paths,)) as pool:
            futures = {pool.submit(_draw_in_worker, r.name, rep, seed, cases, path): (r, rep)
                       for r, rep in zip(records, given)}
            for future in as_completed(futures):
                record, report = futures[future]
                try:
                    result = future.result()
                except Exception:  # noqa: BLE001 - a worker that dies draws nothing
                    result = _safe_draw(record, report, seed, cases, path)
                keep(record, result)
    ordered = [done[r.name][0] for r in records]
    write_docs(out, records)
    (out / "index.html").write_text(html_report.index(ordered, seconds + time.perf_counter() - t0,
                                                      _bench_link(out)))
    return ordered


def write_docs(out: Path, records: Sequence[Derivation]) -> None:
    """Every Markdown page beside the records' own (the notation page, pages they link to) as
    ``doc-<stem>.html``, so that a derivation's links to them work in the report."""
    folders = {found.resolve().parent for r in records
               if (found := doc_path(r.doc, r.origin)) is not None}
    for source in sorted(p for folder in folders for p in folder.glob("*.md")):
        body, _ = render(source.read_text())
        (out / doc_filename(source.stem)).write_text(html_report.page(
            source.stem, '<nav><a href="index.html">&larr; every derivation</a></nav>'
            f'<div class="doc">{body}</div>'))


def _safe_draw(record: Derivation, report: Report | None, seed: int, cases: int,
               path: str) -> tuple[Report, str]:
    try:
        return draw(record, report, seed, cases, path)
    except Exception as exc:  # noqa: BLE001 - a page that fails says so, the site goes on
        report = report or Report(record.name, record.expect, record.erratum, record.doc,
                                  expect_kind=record.expect_kind)
        note = f"drawing this page raised {type(exc).__name__}: {exc}"
        return report, html_report.derivation_page(record, report, None, path, note)


def _bench_link(out: Path) -> str:
    return (' <a href="bench.html">Benchmarks: hand against autograd.</a>'
            if (out / "bench.html").exists() else "")
