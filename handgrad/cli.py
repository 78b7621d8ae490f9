"""``handgrad check``: run every oracle over the named (default: all) derivations."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from handgrad import config, parallel, scaffold, summary
from handgrad.discovery import discover_sources
from handgrad.report import STATUS_WORD, Report


def parse_dims(text: str) -> dict[str, int]:
    try:
        return {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(",") if p)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dims wants NAME=INT,NAME=INT, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
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
    return p


def select(records, names: list[str]):
    """The (path, record) pairs whose name is one of ``names`` or starts with one."""
    if not names:
        return records, []
    chosen = [(p, r) for p, r in records
              if any(r.name == n or r.name.startswith(n) for n in names)]
    unknown = [n for n in names
               if not any(r.name == n or r.name.startswith(n) for _, r in records)]
    return chosen, unknown


def summary_rows(report: Report) -> list[tuple[str, ...]]:
    """One row per case x dtype x check: the worst tensor's figures and the verdict."""
    groups: dict[tuple, list] = {}
    for r in report.results:
        groups.setdefault((r.case, r.data_seed, r.dtype, r.check), []).append(r)
    rows = []
    for (case, seed, dtype, chk), rs in groups.items():
        failed = [r for r in rs if not r.passed]
        statuses = {r.status for r in rs}
        status = "fail" if failed else next(
            (s for s in ("unreliable", "skipped") if s in statuses), "pass")
        if any(r.status == "error" for r in rs):
            status = "error"
        worst = max((r.max_rel for r in rs if math.isfinite(r.max_rel)), default=math.nan)
        label = "slope" if chk == "taylor" else "max rel"
        verdict = STATUS_WORD[status]
        if failed:
            verdict += " " + ", ".join(sorted({f"{r.tensor}:{r.kind}" for r in failed}))
        rows.append((report.derivation, f"{case} s={seed}", dtype, chk, str(len(rs)),
                     "-" if math.isnan(worst) else f"{label} {worst:.1e}", verdict))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("derivation", "case", "dtype", "check", "tensors", "figure", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


USAGE = """usage: handgrad check [NAME ...] [--path DIR] [--seed S] [--cases K] [--json]
       handgrad new NAME [--path DIR]
(handgrad check --help, handgrad new --help)"""


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
    if not argv or argv[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv[1:])
    paths = [p for group in args.path for p in group] if args.path else None
    sources = discover_sources(paths)
    records = [(path, r) for path, rs, _ in sources for r in rs]
    broken = [b for _, _, bs in sources for b in bs]
    if not records and not broken and paths is None:
        print("handgrad: no records: give --path DIR (or a .py file), or set [tool.handgrad] "
              "paths = [\"grads\"] in your pyproject.toml", file=sys.stderr)
        return 2
    chosen, unknown = select(records, args.names)
    if args.list:
        for _, r in chosen:
            print(f"{r.name:32s} {'expect ' + r.expect:16s} {r.erratum or r.doc}")
        return 0
    problems = [f"{b.module}: {b.message}" for b in broken]
    problems += [f"no derivation matches {n!r}" for n in unknown]
    started = time.perf_counter()
    options = parallel.Options(seed=args.seed, cases=args.cases, dims=args.dims,
                               data_seed=args.data_seed if args.dims else None)
    # One torch thread, as in each worker of -j N: the same float32 rounding either way, and
    # the check's small tensors run no slower for it.
    torch.set_num_threads(1)
    reports = parallel.check_many(chosen, options, jobs=args.jobs, timeout=args.timeout)
    elapsed = time.perf_counter() - started
    if args.summary_csv or args.summary_json:
        summary.write(sources, chosen, reports, args.summary_csv, args.summary_json)
    if args.json:
        print(json.dumps([{**r.as_dict(), "expect": rep.expect}
                          for rep in reports for r in rep.results], indent=1))
    else:
        render(reports, args.verbose, elapsed)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    ok = not problems and all(r.as_expected for r in reports)
    return 0 if ok else 1


def render(reports: list[Report], verbose: bool, elapsed: float) -> None:
    rows = [row for rep in reports if rep.expect == "pass" for row in summary_rows(rep)]
    if rows:
        print_table(rows)
    for rep in reports:
        if verbose or not rep.as_expected:
            print()
            print(rep.render(only_failures=not verbose))
    errata = [rep for rep in reports if rep.expect == "reject"]
    if errata:
        print("\nKnown errors (the source's, transcribed, and our mutants; each must be "
              "rejected):")
        for rep in errata:
            verdict = ("rejected" if rep.as_expected else
                       f"rejected as {rep.kind!r}, expected {rep.expect_kind!r}:"
                       if rep.rejected else "MISSED")
            first = next((d.strip() for d in rep.diagnoses if "first wrong" in d), None)
            kinds = sorted({f"{r.check}:{r.kind}" for r in rep.failures})
            print(f"  {verdict:8s} {rep.derivation}: {rep.erratum}")
            if first or kinds:
                print(f"           {first or ', '.join(kinds[:4])}")
    good = sum(r.as_expected for r in reports)
    print(f"\n{good}/{len(reports)} derivations as expected "
          f"({sum(len(r.results) for r in reports)} results, {elapsed:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
