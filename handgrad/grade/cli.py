"""``handgrad grade --records STAFF SUBMISSION ...``: the command line of :mod:`handgrad.grade`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from handgrad import parallel
from handgrad.grade import Graded, Options, grade, load_points
from handgrad.grade import formats as grade_formats
from handgrad.grade.bubblewrap import SandboxUnavailableError
from handgrad.grade.remote import Limits
from handgrad.grade.staff import StaffError
from handgrad.views import summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handgrad grade",
        description="Check the staff's records against every submission, each in a process of "
                    "its own; the verdicts are computed where no submission can reach them.")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION_DIR",
                   help="one folder per submission (its record files, if any, are ignored)")
    p.add_argument("--records", action="append", required=True, metavar="PATH",
                   help="the staff's record file or folder (repeatable); its records import "
                        "the module under test by name (import layers)")
    p.add_argument("--points", metavar="FILE", help="points per record, JSON or TOML "
                   "{\"record-name\": points} (default: 1 each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the case sampler (default 0)")
    p.add_argument("--cases", type=int, default=4, help="cases per record (default 4)")
    p.add_argument("-j", "--jobs", type=parallel.jobs_from, default=1, metavar="N",
                   help="grader processes, or 'auto' for every core (default 1)")
    p.add_argument("--timeout", type=float, default=Limits.timeout, metavar="SECONDS",
                   help=f"per call of a submission's code (default {Limits.timeout:g})")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="per submission: the time its code may take in all (default: no cap)")
    p.add_argument("--memory-mb", type=int, default=Limits.memory_mb,
                   help=f"address space of a submission's process (default {Limits.memory_mb})")
    p.add_argument("--output-kb", type=int, default=Limits.output_kb,
                   help=f"what a submission may print (default {Limits.output_kb} KiB)")
    p.add_argument("--shard", type=shard_from, default=(0, 1), metavar="I/K",
                   help="grade only the I-th of K equal shares of the submissions (0-based; "
                        "one share per machine)")
    p.add_argument("--uncontained", action="store_true",
                   help="run the submissions' code without bubblewrap: only where every "
                        "submission already runs in a container of its own (Gradescope's "
                        "autograder); every output of the run then says it was uncontained")
    p.add_argument("--json", action="store_true",
                   help="print every row of every submission as JSON")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="the diagnosis of every record not as expected, and what it printed")
    p.add_argument("--summary-csv", metavar="FILE",
                   help="one row per submission (the columns of handgrad check --summary-csv)")
    p.add_argument("--summary-json", metavar="FILE", help="the same summary as JSON")
    p.add_argument("--scores-csv", metavar="FILE", help="student, score, max_score per row")
    p.add_argument("--gradescope", metavar="PATH", type=Path,
                   help="Gradescope results.json: a .json file (one submission) or a folder "
                        "(<student>/results.json each)")
    p.add_argument("--junit", metavar="FILE", type=Path, help="JUnit XML of every submission")
    p.add_argument("--html", metavar="DIR", type=Path,
                   help="an index of students, a page per student, a page per failing record")
    return p


def shard_from(text: str) -> tuple[int, int]:
    """``"I/K"``: the I-th (0-based) of K shares."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants I/K, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: I must be in 0..K-1")
    return index, count


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    index, count = args.shard
    # a share is fixed by the sorted folder names, whatever order the shell gives them in
    if count > 1:
        args.submissions = sorted(args.submissions)[index::count]
    if not args.submissions:
        print(f"handgrad grade: share {index}/{count} holds no submission", file=sys.stderr)
        return 0
    missing = [p for p in args.records + args.submissions if not Path(p).exists()]
    if missing:
        print(f"handgrad grade: {', '.join(missing)} does not exist", file=sys.stderr)
        return 2
    try:
        points = load_points(args.points)
    except (OSError, ValueError) as exc:
        print(f"handgrad grade: {exc}", file=sys.stderr)
        return 2
    options = Options(records=tuple(str(Path(p).resolve()) for p in args.records),
                      seed=args.seed, cases=args.cases, html=args.html is not None,
                      limits=Limits(args.timeout, args.memory_mb, args.output_kb, args.budget),
                      contained=not args.uncontained, points=args.points)
    if args.uncontained:
        print(f"handgrad grade: {grade_formats.UNCONTAINED}", file=sys.stderr)
    width = max(len(Path(s).name) for s in args.submissions)
    started = time.perf_counter()

    def line(_: int, g: Graded) -> None:
        if args.json:
            return
        earned, possible = g.score(points)
        bad = ", ".join(f"{r.derivation} {r.status.upper()} [{r.kind}]"
                        for r in g.reports if not r.as_expected)
        print(f"{g.student:<{width}}  {earned:g}/{possible:g}  {bad or 'all as expected'}",
              flush=True)

    try:
        graded = grade(args.submissions, options, jobs=args.jobs, on_graded=line)
    except (SandboxUnavailableError, StaffError) as exc:
        print(f"handgrad grade: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({g.student: grade_formats.verdicts(g) for g in graded}, indent=1))
    elif args.verbose:
        for g in graded:
            for report in g.reports:
                if not report.as_expected:
                    print(f"\n[{g.student}] " + grade_formats.record_output(
                        report, g.printed.get(report.derivation, "")))
    write(args, graded, points)
    notes = grade_formats.run_notes(graded[0]) if graded else []
    if not args.json:
        contained = "contained by bubblewrap" if options.contained else "UNCONTAINED"
        print(f"{len(graded)} submissions graded in {elapsed:.1f} s, {contained}")
        for note in notes:
            print(note)
    for incident in graded[0].run_incidents if graded else []:
        print(f"handgrad grade: INCIDENT of the run: {incident}", file=sys.stderr)
    return 1 if graded and graded[0].run_incidents else 0


def write(args, graded: list[Graded], points) -> None:
    if args.summary_csv or args.summary_json:
        sources = [(g.folder, [], g.broken) for g in graded]
        chosen = [(g.folder, None) for g in graded for _ in g.reports]
        summary.write(sources, chosen, [r for g in graded for r in g.reports],
                      args.summary_csv, args.summary_json,
                      extra=[grade_formats.run_columns(g) for g in graded])
    if args.scores_csv:
        grade_formats.scores_csv(Path(args.scores_csv), graded, points)
    if args.gradescope:
        grade_formats.write_gradescope(args.gradescope, graded, points)
    if args.junit:
        args.junit.write_text(grade_formats.junit(graded, points))
    if args.html:
        index = grade_formats.write_site(args.html, graded, points)
        if not args.json:
            print(f"report: {index}")
