"""``python -m tests.corpus [NAME ...] [--seed S] [--cases K] [--dims ... --data-seed D]``:
``handgrad check`` over the corpus records instead of ``derivations/``."""

from __future__ import annotations

import sys
import time

from handgrad.check import check
from handgrad.cli import build_parser, render, select
from tests.corpus import BY_NAME, RIGHT, WRONG


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # An exact name means that record alone (relu-class, not also relu-class-writes-dout).
    exact = [BY_NAME[n] for n in args.names if n in BY_NAME]
    prefixes = [n for n in args.names if n not in BY_NAME]
    chosen, unknown = select(RIGHT + WRONG, prefixes) if prefixes or not exact else ([], [])
    chosen = exact + [r for r in chosen if r not in exact]
    if args.list or unknown:
        for n in unknown:
            print(f"error: no corpus record matches {n!r}", file=sys.stderr)
        for r in chosen if args.list else []:
            print(f"{r.name:44s} {'expect ' + r.expect:16s} {r.erratum}")
        return 1 if unknown else 0
    started = time.perf_counter()
    reports = [check(r, args.seed, args.cases, dims=args.dims,
                     data_seed=args.data_seed if args.dims else None) for r in chosen]
    render(reports, args.verbose, time.perf_counter() - started)
    return 0 if all(r.as_expected for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
