"""``handgrad check``: run every oracle over the named (default: all) derivations."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from handgrad import config, scaffold

if TYPE_CHECKING:
    from handgrad.report import Report

# torch, the engine and the views are imported by the commands that use them: ``handgrad new``
# and the usage answer at once, without the second and a half torch takes to import.


def parse_dims(text: str) -> dict[str, int]:
    try:
        return {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(",") if p)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dims wants NAME=INT,NAME=INT, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from handgrad import parallel

    p = argparse.ArgumentParser(prog="handgrad check",
                                description="Check hand-derived gradients against every oracle.")
    p.add_argument("names", nargs="*", help="derivation names or prefixes (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the case sampler (default 0)")
    p.add_argument("--cases", type=int, default=4, help="cases per derivation (default 4)")
    p.add_argument("--dims", type=parse_dims, help="check one case: N=2,d=3,... (with --data-seed)")
    p.add_argument("--data-seed", type=int, default=0, help="data seed of the --dims case")
    p.add_argument("--json", action="store_true", help="print a JSON list of results")
    p.add_argument("--verbose", "-v", action="store_true", help="print every tensor's row")
    p.add_argument("--list", action="store_true", help="list the derivations and exit")
    p.add_argument("--path", action="append", default=None, metavar="PATH", nargs="+",
                   help="folders or .py files of records (repeatable; default: "
                        "[tool.handgrad] paths of the nearest pyproject.toml)")
    p.add_argument("-j", "--jobs", type=parallel.jobs_from, default=1, metavar="N",
                   help="worker processes, or 'auto' for every core (default 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="per case: a case running longer is stopped and reported (runs the "
                        "cases in worker processes)")
    p.add_argument("--summary-csv", metavar="FILE", help="one row per path: its records and "
                   "how many behaved as expected (for many submissions)")
    p.add_argument("--summary-json", metavar="FILE", help="the same summary as JSON")
    p.add_argument("--device", help="where the device checks of custom autograd Functions run "
                   "(cuda, cuda:1; default: each record's own, cpu)")
    p.add_argument("--html", metavar="DIR", type=Path,
                   help="also write the visual report into DIR (see handgrad report)")
    p.add_argument("--watch", action="store_true",
                   help="stay running: re-check the records whose file, page or reference "
                        "changed on each save (Ctrl-C stops)")
    return p


def watch(args: argparse.Namespace, paths: list[str] | None) -> int:
    """``handgrad check --watch``: print each round's lines as ``handgrad check`` would."""
    from handgrad import parallel
    from handgrad import watch as watching
    from handgrad.views import terminal

    options = parallel.Options(seed=args.seed, cases=args.cases, dims=args.dims,
                               data_seed=args.data_seed if args.dims else None)

    def show(batch: watching.Batch) -> None:
        if batch.changed:
            print(f"\nchanged: {', '.join(str(c) for c in batch.changed)}", flush=True)
        for b in batch.broken:
            print(f"error: {b.module}: {' '.join(b.message.split())}", flush=True)
        if batch.reports:
            display = terminal.Display(batch.names, args.verbose, linear=batch.linear)
            for report in batch.reports:
                display.finished(report)
            display.close(batch.reports, batch.done - batch.seen, len(batch.broken))
        elif not batch.broken:
            print("no record to check in the changed files", flush=True)

    watcher = watching.Watcher(paths, args.names, options, show)
    if not watcher.record_files():
        print("handgrad check --watch: no record files: give --path DIR, or set "
              "[tool.handgrad] paths in your pyproject.toml", file=sys.stderr)
        return 2
    print(f"watching {', '.join(str(p) for p in watcher.paths)} (Ctrl-C stops)", flush=True)
    watching.run(watcher)
    return 0


USAGE = """usage: handgrad check [NAME ...] [--path DIR] [--seed S] [--cases K] [--json] [--watch]
       handgrad bench [NAME ...] [--path DIR] [--dims N=256,D=512] [--scale DIM=LO:HI]
                      [--json FILE] [--html DIR]
       handgrad page PAGE [--bind BINDING.toml] [--path DIR] [--seed S] [--cases K] [--json]
       handgrad report [NAME ...] [--path DIR] --html DIR [--bench FILE]
       handgrad new NAME [--path DIR]
       handgrad grade --records STAFF_PATH SUBMISSION_DIR ... [-j N] [--html DIR]
(handgrad check --help, handgrad bench --help, handgrad page --help, handgrad report --help,
 handgrad new --help, handgrad grade --help)"""


WORDS = {"pass": "right", "fail": "WRONG", "not-checkable": "not checkable",
         "unbound": "not bound"}


def page(argv: list[str]) -> int:
    """``handgrad page``: a page's equations marked with their verdicts, section by section."""
    from handgrad import binding

    p = argparse.ArgumentParser(prog="handgrad page",
                                description="Check a page's tagged equations and print the page "
                                            "marked: each equation right, wrong (with the kind) "
                                            "or not checkable (with the construct).")
    p.add_argument("page", type=Path, help="a Markdown page or a Jupyter notebook")
    p.add_argument("--bind", type=Path, metavar="BINDING.toml",
                   help="binds the page's letters to records (see handgrad.binding); default: "
                        "the records whose page it is")
    p.add_argument("--seed", type=int, default=0, help="seed of the case sampler (default 0)")
    p.add_argument("--cases", type=int, default=2, help="cases per record (default 2)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one row per equation")
    p.add_argument("--path", action="append", default=None, metavar="PATH",
                   help="folder or .py file of records (as for handgrad check)")
    args = p.parse_args(argv)
    try:
        marked = binding.check_bound(args.page, args.bind, seed=args.seed, cases=args.cases,
                                     paths=args.path)
    except Exception as exc:  # noqa: BLE001 - a page or binding that does not load: say which
        print(f"handgrad page: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{"check": "equation", **m.__dict__} for m in marked], indent=1))
    else:
        heading = None
        print(f"== {args.page}" + (f" (bound by {args.bind})" if args.bind else ""))
        for m in marked:
            if m.section != heading:
                heading = m.section
                print(f"\n## {heading}")
            word = WORDS[m.status] + (f" [{m.kind}]" if m.kind else "")
            print(f"  ({m.tag})".ljust(10) + f"{word:<22} {m.latex}")
            if m.message and m.status != "pass":
                print(" " * 10 + m.message)
        counts = binding.summary(marked)
        print(f"\n{counts['pass']} right, {counts['fail']} wrong, {counts['not-checkable']} "
              f"not checkable, {counts['unbound']} not bound, of {len(marked)} equations")
    return 1 if any(m.status == "fail" for m in marked) else 0


def new(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="handgrad new",
                                description="Write the files of a new derivation from a template.")
    p.add_argument("name", help="the derivation's name, e.g. my-layer")
    p.add_argument("--path", help="folder for the record file (default: the first of "
                                  "[tool.handgrad] paths, else the working directory)")
    args = p.parse_args(argv)
    cfg = config.load()
    folder = Path(args.path) if args.path else (cfg.paths[0] if cfg.paths else Path.cwd())
    try:
        written = scaffold.new(args.name, folder, cfg)
    except (ValueError, FileExistsError) as exc:
        print(f"handgrad new: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    where = "" if args.path is None and cfg.paths else f" --path {folder}"
    print(f"fill in the TODOs, then: handgrad check {args.name}{where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "new":
        return new(argv[1:])
    if argv and argv[0] == "report":
        return report(argv[1:])
    if argv and argv[0] == "page":
        return page(argv[1:])
    if argv and argv[0] == "bench":
        from handgrad.bench import cli as bench_cli

        return bench_cli.main(argv[1:])
    if argv and argv[0] == "grade":
        from handgrad.grade import cli as grade_cli

        return grade_cli.main(argv[1:])
    if not argv or argv[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    import torch

    from handgrad import contain, parallel
    from handgrad.adapt.functions import DEVICE_VARIABLE
    from handgrad.discovery import discover_sources, select
    from handgrad.views import site, summary, terminal

    contain.watch_interrupts()
    args = build_parser().parse_args(argv[1:])
    paths = [p for group in args.path for p in group] if args.path else None
    if args.watch:
        extra = [flag for flag, given in (("--json", args.json), ("--html", args.html),
                                          ("--timeout", args.timeout), ("-j", args.jobs != 1),
                                          ("--summary-csv", args.summary_csv),
                                          ("--summary-json", args.summary_json)) if given]
        if extra:
            print(f"handgrad check --watch prints each round's lines in one process; it does "
                  f"not take {', '.join(extra)}", file=sys.stderr)
            return 2
        torch.set_num_threads(1)
        return watch(args, paths)
    sources = discover_sources(paths)
    records = [(path, r) for path, rs, _ in sources for r in rs]
    broken = [b for _, _, bs in sources for b in bs]
    if not records and not broken and paths is None:
        print("handgrad: no records: give --path DIR (or a .py file), or set [tool.handgrad] "
              "paths = [\"grads\"] in your pyproject.toml", file=sys.stderr)
        return 2
    chosen, unknown = select(records, args.names)
    if args.list:
        terminal.list_records([r for _, r in chosen])
        return 0
    problems = [f"{b.module}: {b.message}" for b in broken]
    problems += [f"no derivation matches {n!r}" for n in unknown]
    if args.device:  # read by every Function record, here and in the worker processes
        os.environ[DEVICE_VARIABLE] = args.device
    started = time.perf_counter()
    options = parallel.Options(seed=args.seed, cases=args.cases, dims=args.dims,
                               data_seed=args.data_seed if args.dims else None)
    # One torch thread, as in each worker of -j N: the same float32 rounding either way, and
    # the check's small tensors run no slower for it.
    torch.set_num_threads(1)
    display = None if args.json else terminal.Display(
        [r.name for _, r in chosen], args.verbose,
        linear=any(r.jvp is not None or r.hvp is not None for _, r in chosen),
        page=any(r.reference is not None and (r.page or r.doc) for _, r in chosen))
    done: dict[int, Report] = {}
    shown = 0

    def in_order(i: int, report: Report) -> None:
        """Lines in the order of a serial run, whatever order the workers finish in."""
        nonlocal shown
        done[i] = report
        while shown in done:
            display.finished(done[shown])
            shown += 1
        if shown < len(chosen):
            display.started(chosen[shown][1].name)

    with display or nullcontext():
        if display and chosen:
            display.started(chosen[0][1].name)
        reports = parallel.check_many(chosen, options, jobs=args.jobs, timeout=args.timeout,
                                      on_report=in_order if display else None)
    elapsed = time.perf_counter() - started
    if args.summary_csv or args.summary_json:
        summary.write(sources, chosen, reports, args.summary_csv, args.summary_json)
    if args.json:
        print(json.dumps([{**r.as_dict(), "expect": rep.expect}
                          for rep in reports for r in rep.results], indent=1))
    else:
        display.close(reports, elapsed, len(broken))
    if args.html is not None:
        write_report(args.html, [r for _, r in chosen], reports, paths,
                     jobs=site.default_jobs(), seconds=elapsed, quiet=args.json)
    if not reports:
        problems.append("nothing was checked (no derivation found or chosen)")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    ok = not problems and all(r.as_expected for r in reports)
    return 0 if ok else 1


def build_report_parser() -> argparse.ArgumentParser:
    from handgrad.views import site

    p = argparse.ArgumentParser(prog="handgrad report",
                                description="Write the visual report: a static site with an "
                                            "index, a page per derivation, and a benchmark page.")
    p.add_argument("names", nargs="*", help="derivation names or prefixes (default: all)")
    p.add_argument("--device", help="where the device checks of custom autograd Functions run "
                   "(cuda, cuda:1; default: each record's own, cpu)")
    p.add_argument("--html", metavar="DIR", type=Path, required=True,
                   help="folder to write the site into (index.html is its entry page)")
    p.add_argument("--path", action="append", default=None, metavar="PATH",
                   help="folder or .py file of records (as for handgrad check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the case sampler (default 0)")
    p.add_argument("--cases", type=int, default=4, help="cases per derivation (default 4)")
    p.add_argument("--bench", metavar="FILE", type=Path,
                   help="pytest-benchmark JSON (pytest --benchmark-enable --benchmark-json FILE):"
                        " write DIR/bench.html from it; with no NAME, only that page")
    p.add_argument("-j", "--jobs", type=int, default=site.default_jobs(),
                   help="processes drawing the pages (default: one per core)")
    return p


def report(argv: list[str]) -> int:
    from handgrad.discovery import discover_sources, select
    from handgrad.views import html_report

    args = build_report_parser().parse_args(argv)
    if args.bench is not None:
        try:
            page = html_report.bench_page(args.bench)
        except (OSError, ValueError, KeyError) as exc:
            print(f"handgrad report: cannot read {args.bench}: {exc}", file=sys.stderr)
            return 2
        args.html.mkdir(parents=True, exist_ok=True)
        (args.html / "bench.html").write_text(page)
        print(f"wrote {args.html / 'bench.html'}")
        if not args.names:
            return 0
    sources = discover_sources(args.path)
    chosen, unknown = select([(p, r) for p, rs, _ in sources for r in rs], args.names)
    problems = [f"{b.module}: {b.message}" for _, _, bs in sources for b in bs]
    problems += [f"no derivation matches {n!r}" for n in unknown]
    reports = write_report(args.html, [r for _, r in chosen], None, args.path, seed=args.seed,
                           cases=args.cases, jobs=args.jobs)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 0 if not problems and all(r.as_expected for r in reports) else 1


def write_report(out: Path, records, reports: list[Report] | None, paths, *, seed: int = 0,
                 cases: int = 4, jobs: int = 1, seconds: float = 0.0,
                 quiet: bool = False) -> list[Report]:
    """Write the site into ``out``: with ``reports`` (a check just run) only the pictures are
    drawn, else every record is checked and drawn, with the terminal display of a check."""
    from handgrad.views import site, terminal

    started = time.perf_counter()
    display = None if quiet else terminal.Display(
        [r.name for r in records], lines=reports is None,
        doing="checking and drawing" if reports is None else "drawing")
    with display or nullcontext():
        drawn = site.build(out, records, reports, seed=seed, cases=cases, jobs=jobs,
                           paths=paths, seconds=seconds,
                           started=display.started if display else None,
                           finished=display.finished if display else None)
    if display and reports is None:
        display.close(drawn, time.perf_counter() - started)
    if not quiet:
        print(f"report: {out / 'index.html'} ({len(drawn)} derivations, "
              f"{time.perf_counter() - started:.1f} s)")
    return drawn


if __name__ == "__main__":
    sys.exit(main())
