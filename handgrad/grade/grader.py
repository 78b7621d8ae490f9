"""Grading a class: the staff's records against every submission, each submission contained.

Before any submission's code runs (:func:`prepare`): bubblewrap is tried (unless the run is
uncontained); the staff's files are read once and their records loaded once
(:mod:`handgrad.grade.staff`: a record file that does not load stops the run); the staff's
files and the installed handgrad are fingerprinted, and checked again at the end.

For each submission folder:

1. a temporary copy of the folder is made, and a process of its own is started there from a
   clean interpreter (:class:`handgrad.grade.remote.Channel`) inside bubblewrap
   (:mod:`handgrad.grade.bubblewrap`: its copy is all it can write, and it sees none of the
   staff's files, the other submissions or the grader's scratch), with its memory, output and
   per-call time capped; the submission's code runs there and only there;
2. the staff's record files are loaded in the grader from the texts read at the start, where
   ``import layers`` (any top-level module the submission's folder provides and nothing else
   does) gives a proxy of the submission's module (:mod:`handgrad.grade.proxies`);
3. every record is checked here, with the engine of ``handgrad check``: the references, the
   oracles, the comparisons, the Taylor fits and the verdict never run where the submission's
   code can reach them. A submission that patches numpy, torch or handgrad changes only its
   own process, hence only its own outputs; an answer that is not data is ``tampered``;
4. a record during which the submission's process crashed, overran its time, its memory or its
   output cap, or tampered, gets one error row of that kind; the process is started again for
   the next record (at most ``MAX_RESTARTS`` times).

Record files inside the submission folders are never loaded: the records, their tolerances,
references and cases come from ``--records`` only. A record whose ``page`` is a relative path is
checked on the page the submission provides there (:func:`submitted_page`: data, evaluated here
and never run; a link out of the copy or an oversized page is refused).

Submissions are graded in ``jobs`` grader processes (spawned, one torch thread each); a grader
process never runs submission code, so it is reused from one submission to the next.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

from handgrad.discovery import Broken, discover_path
from handgrad.grade.proxies import RemoteModule, SubmissionFinder, module_names, set_aside
from handgrad.grade.remote import Channel, Incident, Limits
from handgrad.report import Report, Result, remember_record

MAX_RESTARTS = 5
PR_SET_DUMPABLE = 4


def undumpable() -> None:
    """Make this (grading) process non-dumpable: a process of the same user, a submission's
    included, can then neither ptrace it nor read or write its memory through /proc (Linux;
    root is not held back by this)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class Options:
    records: tuple[str, ...]  # staff record files or folders
    seed: int = 0
    cases: int = 4
    limits: Limits = Limits()
    html: bool = False  # also draw the page of each record that is not as expected
    # False: no bubblewrap (each submission already has a container of its own); every output
    # of the run says so
    contained: bool = True
    points: str | None = None  # the staff's points file, fingerprinted with the records
    # set by grade(): the staff's texts, read once, and the paths no submission may see
    sources: tuple[tuple[str, str], ...] = ()
    hidden: tuple[str, ...] = ()


@dataclass
class Graded:
    """One submission's outcome: a report per staff record, in the records' order."""

    student: str
    folder: str
    reports: list[Report] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)
    printed: dict[str, str] = field(default_factory=dict)  # record -> what its run printed
    pages: dict[str, str] = field(default_factory=dict)  # record -> its HTML page
    contained: bool = True  # False: graded without bubblewrap (--uncontained)
    # incidents of the whole run (a staff file or handgrad changed while it ran)
    run_incidents: list[str] = field(default_factory=list)

    def score(self, points: Callable[[str], float]) -> tuple[float, float]:
        """(points earned, points possible): a record's points when it behaves as its record
        expects, none otherwise."""
        earned = sum(points(r.derivation) for r in self.reports if r.as_expected)
        return earned, sum(points(r.derivation) for r in self.reports)


def load_points(path: str | None) -> Callable[[str], float]:
    """Points per record from a staff-side file (JSON or TOML ``{"record-name": points}``);
    every record not named is worth 1."""
    if path is None:
        return lambda name: 1.0
    text = Path(path).read_text()
    table = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    table = table.get("points", table)
    bad = [k for k, v in table.items() if not isinstance(v, int | float) or v < 0]
    if bad:
        raise ValueError(f"{path}: points must be non-negative numbers (see {bad})")
    return lambda name: float(table.get(name, 1.0))


def _incident_report(record, incident) -> Report:
    """One error row of the incident's kind; no localisation (there is no case to re-run)."""
    report = Report(record.name, record.expect, record.erratum, record.doc,
                    expect_kind=record.expect_kind,
                    results=[Result(record.name, "", 0, "float64", "contract", "(submission)",
                                    "error", kind=incident.kind, message=incident.message)])
    remember_record(report, record)
    return report


def grade_one(folder: str, options: Options) -> Graded:
    """Grade one submission folder (see the module docstring)."""
    from handgrad.check import check

    undumpable()
    source = Path(folder).resolve()
    graded = Graded(student=source.name, folder=folder)
    scratch = Path(tempfile.mkdtemp(prefix="handgrad-grade-"))
    work = scratch / "work"
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    symlinks=True)
    names = module_names(work)
    sources = dict(options.sources) or None
    hidden = options.hidden or (*options.records, source)
    graded.contained = options.contained
    channel = Channel(work, work, options.limits, options.contained, tuple(map(str, hidden)))
    finder = SubmissionFinder(channel, names)
    aside = set_aside(names)
    sys.meta_path.append(finder)
    restarts = 0
    try:
        records = []
        for path in options.records:
            found, broken = discover_path(Path(path), sources=sources)
            records += found
            graded.broken += broken
        records += _not_loaded(records, graded.broken, options, names)
        for record in records:
            if not channel.alive and restarts < MAX_RESTARTS and not channel.spent:
                restarts += 1
                channel.start()
            if not channel.alive:
                last = channel.incidents[-1]
                note = (f" (not run again: the process was restarted {MAX_RESTARTS} times)"
                        if restarts >= MAX_RESTARTS else "")
                graded.reports.append(_incident_report(record, type(last)(
                    last.kind, last.message + note)))
                continue
            # the first record's output includes what the modules printed as the record
            # files loaded them (at import)
            seen, start = len(channel.incidents), channel.printed_size() if graded.printed else 0
            if isinstance(record, _NotLoaded):
                graded.reports.append(_incident_report(record.record, record.incident))
                continue
            record, refusal = submitted_page(record, work, source)
            report = check(record, options.seed, options.cases)
            name_as_submitted(report, work, source, refusal)
            if len(channel.incidents) > seen:
                report = _incident_report(record, channel.incidents[seen])
            graded.printed[record.name] = channel.printed(start)
            if options.html and not report.as_expected:
                graded.pages[record.name] = _page(record, report, channel)
            graded.reports.append(report)
    finally:
        sys.meta_path.remove(finder)
        for name in names:
            if isinstance(sys.modules.get(name), RemoteModule):
                del sys.modules[name]
        sys.modules.update(aside)
        channel.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return graded


PAGE_BYTES = 1 << 20
"""The largest submitted page read (1 MiB: a page of LaTeX is a few kilobytes)."""


def submitted_page(record, work: Path, source: Path):
    """``record`` with its page read from the submission's copy, where its ``page`` is a
    relative path (the staff's ``page="derivation.md"``: the page each student hands in), and
    why it was refused, if it was. A page is data: it is parsed and evaluated here by
    handgrad's own evaluator and never run, but it is read here, outside the sandbox, so only a
    regular file inside the copy is read: a link out of it (to the staff's files, say) or an
    oversized file is refused; a missing one is reported as missing by the page check."""
    page = record.page
    if not page or Path(page).is_absolute():
        return record, ""
    candidate = work / page
    try:
        inside = candidate.resolve().is_relative_to(work.resolve())
    except OSError:
        inside = False
    why = ""
    if not inside:
        why = "outside the submission's folder (a link out of it, or a path with ..)"
    elif candidate.exists() and not candidate.is_file():
        why = "not a regular file"
    elif candidate.is_file() and candidate.stat().st_size > PAGE_BYTES:
        why = f"larger than {PAGE_BYTES >> 20} MiB"
    if not why:
        return replace(record, page=str(candidate)), ""
    refusal = (f"the page {source / page} is {why}: not read (a submitted page must be a "
               f"regular file inside the submission's folder, at most {PAGE_BYTES >> 20} MiB)")
    # a path that is not there: nothing outside the copy is ever read
    return replace(record, page=str(work.parent / "refused" / Path(page).name)), refusal


def name_as_submitted(report: Report, work: Path, source: Path, refusal: str) -> None:
    """The rows and diagnoses of ``report`` with the copy's paths named as the submission's
    folder (a missing page is the student's ``derivation.md``, not the grader's scratch), and
    a refused page's error row saying why it was refused."""
    def named(text: str) -> str:
        return text.replace(str(work), str(source))

    results = []
    for r in report.results:
        message = refusal if (refusal and r.check == "equation"
                              and r.kind == "page-error") else named(r.message)
        results.append(r if message == r.message else replace(r, message=message))
    report.results = results
    report.diagnoses = [f"equation (page): {refusal}"
                        if refusal and d.startswith("equation (page):") else named(d)
                        for d in report.diagnoses]


@dataclass(frozen=True)
class _NotLoaded:
    """A staff record that loaded before any submission ran but not with this one (its record
    file raised with this submission's modules): an error row, never a missing row."""

    record: object
    incident: Incident


def _not_loaded(records: list, broken: list[Broken], options: Options,
                names: set[str]) -> list[_NotLoaded]:
    if not broken:
        return []
    from handgrad.grade.staff import load_records

    have = {r.name for r in records}
    template, _ = load_records(options.records, dict(options.sources) or None, names)
    why = "; ".join(b.message for b in broken)
    return [_NotLoaded(r, Incident("exception", f"the staff's record file did not load with "
                                                f"this submission: {why}"))
            for r in template if r.name not in have]


def _page(record, report: Report, channel: Channel) -> str:
    from handgrad.views import html_report
    from handgrad.views.evidence import gather

    evidence, note = None, ""
    if channel.alive:
        try:
            evidence = gather(record, report)
        except Exception as exc:  # noqa: BLE001 - the page says so, the grading goes on
            note = f"drawing this page raised {type(exc).__name__}: {exc}"
    return html_report.derivation_page(record, report, evidence, "", note)


def _init_grader() -> None:
    import torch

    torch.set_num_threads(1)


def prepare(folders: Sequence[str], options: Options) -> Options:
    """Before any submission's code runs: the sandbox tried (unless uncontained), the staff's
    files read and loaded once, the paths each submission must not see. Raises
    :class:`~handgrad.grade.bubblewrap.SandboxUnavailableError` or
    :class:`~handgrad.grade.staff.StaffError`."""
    from handgrad.grade import bubblewrap, staff

    if options.contained:
        bubblewrap.probe()
    read = staff.read(options.records, options.points, folders)
    hidden = (*read.files, *options.records, *(str(Path(f).resolve()) for f in folders))
    return replace(options, sources=read.sources, hidden=hidden)


def grade(folders: Sequence[str], options: Options, jobs: int = 1,
          on_graded: Callable[[int, Graded], None] | None = None) -> list[Graded]:
    """Every submission of ``folders``, in their order, on ``jobs`` grader processes (see
    :func:`prepare` for what is settled first). The staff's files and the installed handgrad
    are fingerprinted before and after; what changed is in every submission's
    ``run_incidents``."""
    from handgrad.grade import staff

    options = prepare(folders, options)
    files = [p for p, _ in options.sources] + ([options.points] if options.points else [])
    before = staff.fingerprint(files)
    out = _grade_all(folders, options, jobs, on_graded)
    incidents = staff.changes(before, staff.fingerprint(files))
    for g in out:
        g.run_incidents = list(incidents)
        g.contained = options.contained
    return out


def _grade_all(folders: Sequence[str], options: Options, jobs: int,
               on_graded: Callable[[int, Graded], None] | None) -> list[Graded]:
    out: list[Graded | None] = [None] * len(folders)
    if jobs <= 1 or len(folders) <= 1:
        for i, folder in enumerate(folders):
            out[i] = grade_one(folder, options)
            if on_graded:
                on_graded(i, out[i])
        return out
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                             initializer=_init_grader) as pool:
        futures = {pool.submit(grade_one, folder, options): i for i, folder in enumerate(folders)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                out[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - a grader process lost: say so, go on
                out[i] = Graded(Path(folders[i]).name, folders[i], contained=options.contained,
                                broken=[Broken(
                    folders[i], f"grading this submission failed in the grader "
                                f"({type(exc).__name__}: {exc}); grade it again with -j 1")])
            if on_graded:
                on_graded(i, out[i])
    return out
