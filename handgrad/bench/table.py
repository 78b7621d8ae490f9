"""The benchmark summary: per group hand and autograd medians, their ratio with its spread,
GFLOP/s, roof fraction.

Every benchmark of handgrad (``handgrad bench``, the pytest plugin's benchmark items, the
scaling series of ``tests/test_benchmarks_linearise.py``) carries ``extra_info``: ``side``
("hand", "autograd" or "roof"; a roof also names its ``library``), ``dtype`` and ``flops`` (the
record's :attr:`Derivation.flops` at the benchmarked dims, the same count for hand and
autograd). The ``roof`` benchmarks time a large square matrix product, NumPy's and torch's, in
each dtype (at the start and at the end of the run); the best of their medians is the machine's
GEMM rate in that session, and each hand kernel is reported as a fraction of it. Everything
comes from the same run, so a busy machine lowers the roof along with the kernels. Because the
tags travel in ``extra_info``, they are saved in pytest-benchmark's JSON too, and
:func:`from_json` reads them back.

The spread of a ratio: hand's first and third quartiles over autograd's third and first, the
ratios the middle half of each side's rounds allow. A ratio depends on the machine, so the
summary opens with the machine it ran on (:func:`handgrad.bench.host.machine`). Benchmarks that
time one computation at growing sizes tag ``series`` and ``size``; the summary fits each
series' cost exponent (:func:`cost_exponent`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace

from handgrad.bench.host import machine, machine_lines

SIDES = ("hand", "autograd")


@dataclass(frozen=True)
class Timing:
    """One benchmark's median seconds and its tags."""

    group: str
    side: str
    library: str
    dtype: str
    flops: float | None
    median: float
    q1: float | None = None
    q3: float | None = None

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s at the median time, or None without a FLOP count."""
        return None if not self.flops else self.flops / self.median / 1e9


def timings(benchmarks: Iterable) -> list[Timing]:
    """The tagged benchmarks that ran at least one round (``--benchmark-disable`` runs none)."""
    out = []
    for bench in benchmarks:
        info = getattr(bench, "extra_info", None) or {}
        stats = getattr(bench, "stats", None)
        if "side" in info and stats is not None and stats.rounds:
            out.append(Timing(bench.group, info["side"], info.get("library", ""),
                              info["dtype"], info.get("flops"), stats.median,
                              getattr(stats, "q1", None), getattr(stats, "q3", None)))
    return out


def gemm_rates(measured: Iterable[Timing]) -> dict[str, float]:
    """dtype -> the best GEMM rate (GFLOP/s) among the roof benchmarks of that dtype."""
    rates: dict[str, float] = {}
    for t in measured:
        if t.side == "roof" and t.gflops is not None:
            rates[t.dtype] = max(rates.get(t.dtype, 0.0), t.gflops)
    return rates


def from_json(data: Mapping) -> list[SimpleNamespace]:
    """The benchmarks of a pytest-benchmark JSON (``--benchmark-json``, ``handgrad bench
    --json``) as objects :func:`summary` reads, like the live ones: group, extra_info, stats."""
    return [SimpleNamespace(group=b.get("group") or b["name"], name=b["name"],
                            extra_info=b.get("extra_info") or {},
                            stats=SimpleNamespace(**{k: v for k, v in b["stats"].items()
                                                     if k != "data"}))
            for b in data.get("benchmarks", [])]


def spread(hand: Timing, auto: Timing) -> tuple[float, float] | None:
    """The range of hand/autograd ratios the quartiles allow, or None without quartiles."""
    if None in (hand.q1, hand.q3, auto.q1, auto.q3) or not auto.q1 or not auto.q3:
        return None
    return hand.q1 / auto.q3, hand.q3 / auto.q1


def pairs(measured: Iterable[Timing]) -> list[tuple[str, Timing, Timing]]:
    """(group, hand, autograd) for every group holding both sides, in group order."""
    groups: dict[str, dict[str, Timing]] = {}
    for t in measured:
        if t.side in SIDES:
            groups.setdefault(t.group, {})[t.side] = t
    return [(g, sides["hand"], sides["autograd"]) for g, sides in sorted(groups.items())
            if len(sides) == 2]


def _rate(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.1f}"


def cost_exponent(sizes: Iterable[float], seconds: Iterable[float]) -> float:
    """The least-squares slope of log(seconds) against log(size): p in seconds ~ size^p.

    Needs at least two distinct sizes and positive times.
    """
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    if len(xs) != len(ys) or len(set(xs)) < 2:
        raise ValueError("cost_exponent needs times at two or more distinct sizes")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def scaling_lines(benchmarks: Iterable) -> list[str]:
    """Per ``series`` tag: the median at each ``size`` and the fitted cost exponent."""
    series: dict[str, dict[float, float]] = {}
    for bench in benchmarks:
        info = getattr(bench, "extra_info", None) or {}
        stats = getattr(bench, "stats", None)
        if "series" in info and "size" in info and stats is not None and stats.rounds:
            series.setdefault(info["series"], {})[info["size"]] = stats.median
    lines = []
    for name, points in sorted(series.items()):
        sizes = sorted(points)
        times = ", ".join(f"{s:g}: {points[s] * 1e3:.3f} ms" for s in sizes)
        exponent = (f"exponent {cost_exponent(sizes, [points[s] for s in sizes]):.2f}"
                    if len(sizes) > 1 else "exponent - (one size)")
        lines.append(f"{name}: {exponent} over sizes {times}")
    return lines


def summary(benchmarks: Iterable, info: Mapping[str, str] | None = None) -> list[str]:
    """Lines of the summary table; empty when no tagged benchmark ran.

    Per group holding one hand and one autograd benchmark: median milliseconds of each, the
    ratio hand / autograd, GFLOP/s of each, the hand GFLOP/s as a fraction of the GEMM rate
    of its dtype (``roof``) and the ratio's spread (:func:`spread`). A line per roof benchmark
    first says what the roof was. The machine's lines (``info``, default this machine's) open
    the table, and each scaling series closes it with its exponent.
    """
    benchmarks = list(benchmarks)
    measured = timings(benchmarks)
    rates = gemm_rates(measured)
    lines = [f"{t.group:28s} {t.library:8s} {t.median * 1e3:9.3f} ms {_rate(t.gflops)} GFLOP/s"
             for t in sorted(measured, key=lambda t: (t.group, t.library)) if t.side == "roof"]
    if rates:
        lines.append("GEMM rate (the roof): " + ", ".join(f"{d} {r:.1f} GFLOP/s"
                                                          for d, r in sorted(rates.items())))
    paired = pairs(measured)
    if paired:
        lines.append(f"{'group':60s} {'hand ms':>9s} {'autograd ms':>11s} {'ratio':>6s} "
                     f"{'hand GF/s':>9s} {'auto GF/s':>9s} {'roof':>5s} {'ratio spread':>12s}")
    for group, hand, auto in paired:
        roof = rates.get(hand.dtype)
        fraction = "    -" if hand.gflops is None or not roof else f"{hand.gflops / roof:5.0%}"
        band = spread(hand, auto)
        lines.append(f"{group:60s} {hand.median * 1e3:9.3f} {auto.median * 1e3:11.3f} "
                     f"{hand.median / auto.median:6.2f} {_rate(hand.gflops):>9s} "
                     f"{_rate(auto.gflops):>9s} {fraction} "
                     + ("           -" if band is None else f"{band[0]:5.2f} - {band[1]:4.2f}"))
    lines += scaling_lines(benchmarks) + sandbox_lines(benchmarks)
    return machine_lines(info or machine()) + lines if lines else []


SANDBOX_SIDES = ("uncontained start", "contained start", "submission")


def sandbox_lines(benchmarks: Iterable) -> list[str]:
    """Per group holding the three sandbox benchmarks (tests/test_benchmarks_sandbox.py): what
    bubblewrap adds to a submission's interpreter start, as a fraction of grading it. The
    contained start carries the median of the uncontained starts interleaved with its rounds
    (``paired_uncontained``): the fairer difference on a machine whose load drifts."""
    groups: dict[str, dict] = {}
    for bench in benchmarks:
        info = getattr(bench, "extra_info", None) or {}
        stats = getattr(bench, "stats", None)
        if info.get("side") in SANDBOX_SIDES and stats is not None and stats.rounds:
            groups.setdefault(bench.group, {})[info["side"]] = (stats.median, info)
    lines = []
    for group, sides in sorted(groups.items()):
        if len(sides) < 3:
            continue
        (bare, _), (jail, info), (whole, _) = (sides[s] for s in SANDBOX_SIDES)
        paired = info.get("paired_uncontained")
        line = (f"{group}: interpreter start {bare * 1e3:.1f} ms uncontained, "
                f"{jail * 1e3:.1f} ms in bubblewrap (+{(jail - bare) * 1e3:.1f} ms, "
                f"{(jail - bare) / whole:.1%} of grading one submission, {whole * 1e3:.0f} ms)")
        if paired:
            line += (f"; against the uncontained starts interleaved with it ({paired * 1e3:.1f}"
                     f" ms): +{(jail - paired) * 1e3:.1f} ms, {(jail - paired) / whole:.1%}")
        lines.append(line)
    return lines
