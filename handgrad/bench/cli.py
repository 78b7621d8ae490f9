"""``handgrad bench``: time the records' hand code against autograd (see handgrad/bench/)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from handgrad.bench import host, pairs, runner, table

USAGE_EXAMPLES = """examples:
  handgrad bench                         every record with bench dims, float64 and float32
  handgrad bench mlp-ce-tanh --dims N=256,d=512
  handgrad bench mlp-ce-tanh --scale N=32:512 --html out/
  handgrad bench --json run.json && pytest-benchmark compare run.json"""


def parse_dims(text: str) -> dict[str, int]:
    try:
        return {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(",") if p)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dims wants NAME=INT,NAME=INT, got {text!r}") from None


def parse_scale(text: str) -> tuple[str, list[int]]:
    """``DIM=LO:HI`` -> (DIM, [LO, 2 LO, 4 LO, ..., HI]): doubling sizes, HI always last."""
    try:
        name, _, span = text.partition("=")
        lo, hi = (int(v) for v in span.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale wants DIM=LO:HI, got {text!r}") from None
    if not name.strip() or lo < 1 or hi <= lo:
        raise argparse.ArgumentTypeError(f"--scale wants DIM=LO:HI with 1 <= LO < HI, got "
                                         f"{text!r}")
    sizes = [lo]
    while sizes[-1] * 2 < hi:
        sizes.append(sizes[-1] * 2)
    return name.strip(), [*sizes, hi]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handgrad bench", epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Time each record's hand forward+backward (and jvp, hvp, custom Function) "
                    "against its reference's autograd, side by side, with pytest-benchmark.")
    p.add_argument("names", nargs="*", help="record names or prefixes (default: all)")
    p.add_argument("--path", action="append", default=None, metavar="PATH",
                   help="folder or .py file of records (default: [tool.handgrad] paths)")
    p.add_argument("--dims", type=parse_dims, metavar="N=256,D=512",
                   help="time at these dims (over the record's own bench dims; records "
                        "without bench dims are timed too)")
    p.add_argument("--dtype", action="append", choices=pairs.DTYPES, default=None,
                   help="repeatable (default: float64 and float32; with --scale, float64)")
    p.add_argument("--kind", action="append", choices=pairs.KINDS, default=None,
                   help="only these kinds of pair (repeatable; default: every kind a record "
                        "has)")
    p.add_argument("--scale", type=parse_scale, metavar="DIM=LO:HI",
                   help="time the hand backward and autograd at doubling sizes of DIM and fit "
                        "each one's cost exponent")
    p.add_argument("--no-roof", action="store_true",
                   help="skip the GEMM probes (no roof fraction, no loaded-machine warning)")
    p.add_argument("--json", metavar="FILE",
                   help="write pytest-benchmark's JSON (pytest-benchmark compare FILE reads it)")
    p.add_argument("--html", metavar="DIR", type=Path,
                   help="write DIR/bench.html: the table and its plots, self-contained")
    runner.add_options(p)
    return p


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from handgrad.discovery import discover_sources, select

    args = build_parser().parse_args(argv)
    sources = discover_sources(args.path)
    records = [(p, r) for p, rs, _ in sources for r in rs]
    problems = [f"{b.module}: {b.message}" for _, _, bs in sources for b in bs]
    if not records and not problems and args.path is None:
        _say("handgrad bench: no records: give --path DIR, or set [tool.handgrad] paths = "
             "[\"grads\"] in your pyproject.toml")
        return 2
    chosen, unknown = select(records, args.names)
    problems += [f"no derivation matches {n!r}" for n in unknown]
    chosen = [r for _, r in chosen]
    right = [r for r in chosen if r.expect != "reject"]
    if args.scale and not args.names:
        _say("handgrad bench: --scale times the records you name: handgrad bench NAME "
             "--scale DIM=LO:HI")
        return 2
    dtypes = tuple(args.dtype or (("float64",) if args.scale else pairs.DTYPES))
    timed = [r for r in right if r.bench or args.dims]
    unbenched = [r.name for r in right if not r.bench and not args.dims]
    info = host.machine()
    for line in host.machine_lines(info):
        print(line)
    if unbenched:
        print(f"not benchmarked ({len(unbenched)}, no bench dims: add bench=({{...}},) to the "
              f"record or give --dims): " + ", ".join(unbenched))
    rejected = [r.name for r in chosen if r.expect == "reject"]
    if rejected and args.names:
        print("not benchmarked (they transcribe known errors): " + ", ".join(rejected))
    bench = runner.Bench.standalone(runner.options_from(args))
    if not args.no_roof and timed:
        _roofs(bench, dtypes, "first")
    for record in timed:
        if args.scale:
            problems += _scale(bench, record, args, dtypes)
            continue
        for rec, dims, dtype, kind in pairs.plan([record], args.dims, dtypes, args.kind):
            problems += _time(bench, rec, dims, dtype, kind)
    if not args.no_roof and timed:
        _roofs(bench, dtypes, "last")
    for line in table.summary(bench.benchmarks, info)[3:]:
        print(line)
    for line in runner.load_lines(bench.benchmarks, info):
        print(line)
    if args.json:
        data = runner.as_json(bench.benchmarks, info)
        Path(args.json).write_text(json.dumps(data, indent=1))
        print(f"wrote {args.json} (pytest-benchmark compare {args.json})")
    if args.html:
        from handgrad.views import bench_page

        args.html.mkdir(parents=True, exist_ok=True)
        data = runner.as_json(bench.benchmarks, info)
        (args.html / "bench.html").write_text(bench_page.page(data))
        print(f"wrote {args.html / 'bench.html'}")
    if timed and not any(b.stats for b in bench.benchmarks if b.extra_info.get("side")
                         in table.SIDES):
        problems.append("nothing was timed")
    if not timed:
        problems.append("no record to benchmark: none has bench dims (give --dims)")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 0 if not problems else 1


def _roofs(bench: runner.Bench, dtypes, when: str) -> None:
    _say(f"timing the GEMM roof ({when}) ...")
    for dtype in dtypes:
        for library in ("numpy", "torch"):
            runner.time_roof(bench, dtype, library, when)


def _time(bench: runner.Bench, record, dims, dtype: str, kind: str, series=None,
          size=None) -> list[str]:
    """Time one pair; a record that fails is one error line, and the others go on."""
    label = f"{record.name} {kind} {dtype} {pairs.dims_text(dims)}"
    _say(f"timing {label} ...")
    try:
        pair = pairs.pair(record, dims, dtype, kind)
        runner.time_pair(bench, pair, series=series, size=size)
    except Exception as exc:  # noqa: BLE001 - one record's failure never stops the run
        return [f"{label}: {type(exc).__name__}: {exc}"]
    return []


def _scale(bench: runner.Bench, record, args, dtypes) -> list[str]:
    name, sizes = args.scale
    base = {**(dict(record.bench[0]) if record.bench else {}), **(args.dims or {})}
    if name not in record.dims and name not in base:
        return [f"{record.name} has no dimension {name!r} (its dims: "
                f"{', '.join(sorted(record.dims))})"]
    problems = []
    for dtype in dtypes:
        for size in sizes:
            problems += _time(bench, record, {**base, name: size}, dtype, "backward",
                              series=f"{name}, {dtype}", size=size)
    return problems
