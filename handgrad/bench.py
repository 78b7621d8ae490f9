"""The benchmark summary: per group hand and autograd medians, their ratio, GFLOP/s, roof fraction.

``tests/test_benchmarks.py`` tags every benchmark with ``extra_info``: ``side`` ("hand",
"autograd" or "roof"; a roof also names its ``library``), ``dtype`` and ``flops`` (the record's
:attr:`Derivation.flops` at the benchmarked dims, the same count for hand and autograd). The
``roof`` benchmarks time a large square matrix product, NumPy's and torch's, in each dtype (at
the start and at the end of the run); the best of their medians is the machine's GEMM rate in
that session, and each hand kernel is reported as a fraction of it.
Everything comes from the same run, so a busy machine lowers the roof along with the kernels.
Because the tags travel in ``extra_info``, they are saved with ``--benchmark-save`` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
                              info["dtype"], info.get("flops"), stats.median))
    return out


def gemm_rates(measured: Iterable[Timing]) -> dict[str, float]:
    """dtype -> the best GEMM rate (GFLOP/s) among the roof benchmarks of that dtype."""
    rates: dict[str, float] = {}
    for t in measured:
        if t.side == "roof" and t.gflops is not None:
            rates[t.dtype] = max(rates.get(t.dtype, 0.0), t.gflops)
    return rates


def _rate(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.1f}"


def summary(benchmarks: Iterable) -> list[str]:
    """Lines of the summary table; empty when no tagged benchmark ran.

    Per group holding one hand and one autograd benchmark: median milliseconds of each, the
    ratio hand / autograd, GFLOP/s of each, and the hand GFLOP/s as a fraction of the GEMM rate
    of its dtype (``roof``). A line per roof benchmark first says what the roof was.
    """
    measured = timings(benchmarks)
    rates = gemm_rates(measured)
    lines = [f"{t.group:28s} {t.library:8s} {t.median * 1e3:9.3f} ms {_rate(t.gflops)} GFLOP/s"
             for t in sorted(measured, key=lambda t: (t.group, t.library)) if t.side == "roof"]
    if rates:
        lines.append("GEMM rate (the roof): " + ", ".join(f"{d} {r:.1f} GFLOP/s"
                                                          for d, r in sorted(rates.items())))
    groups: dict[str, dict[str, Timing]] = {}
    for t in measured:
        if t.side in SIDES:
            groups.setdefault(t.group, {})[t.side] = t
    pairs = [(g, sides) for g, sides in sorted(groups.items()) if len(sides) == 2]
    if pairs:
        lines.append(f"{'group':60s} {'hand ms':>9s} {'autograd ms':>11s} {'ratio':>6s} "
                     f"{'hand GF/s':>9s} {'auto GF/s':>9s} {'roof':>5s}")
    for group, sides in pairs:
        hand, auto = sides["hand"], sides["autograd"]
        roof = rates.get(hand.dtype)
        fraction = "    -" if hand.gflops is None or not roof else f"{hand.gflops / roof:5.0%}"
        lines.append(f"{group:60s} {hand.median * 1e3:9.3f} {auto.median * 1e3:11.3f} "
                     f"{hand.median / auto.median:6.2f} {_rate(hand.gflops):>9s} "
                     f"{_rate(auto.gflops):>9s} {fraction}")
    return lines
