"""The benchmark page (``bench.html``): the summary of a pytest-benchmark JSON written by
``handgrad bench --json``/``--html`` or by ``pytest --benchmark-enable --benchmark-json``, as a
table (ratio of medians with its spread, GFLOP/s, roof fraction), a bar chart of the medians and,
for scaling series, a log-log plot with each fitted cost exponent. Static and self-contained, as
the report is: the plots are inline SVG, nothing is fetched."""

from __future__ import annotations

from collections.abc import Mapping

from handgrad.bench import table
from handgrad.bench.host import load_warnings, machine_lines
from handgrad.bench.runner import roof_rates
from handgrad.views import plots
from handgrad.views.html_report import esc
from handgrad.views.html_report import page as html_page


def _machine(data: Mapping) -> list[str]:
    info = data.get("machine_info", {})
    ours = info.get("handgrad")
    if ours:
        return machine_lines(ours)
    return [" ".join(str(info.get(k, "")) for k in ("node", "processor", "python_version"))]


def _series(benchmarks) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for b in benchmarks:
        if "series" in b.extra_info and "size" in b.extra_info and b.stats.rounds:
            out.setdefault(b.extra_info["series"], []).append((b.extra_info["size"],
                                                               b.stats.median))
    return out


def page(data: Mapping) -> str:
    benchmarks = table.from_json(data)
    measured = table.timings(benchmarks)
    rates = table.gemm_rates(measured)
    rows = []
    for group, hand, auto in table.pairs(measured):
        roof = rates.get(hand.dtype)
        band = table.spread(hand, auto)
        cells = [f"{hand.median * 1e3:.3f}", f"{auto.median * 1e3:.3f}",
                 f"{hand.median / auto.median:.2f}",
                 "-" if band is None else f"{band[0]:.2f} - {band[1]:.2f}",
                 "-" if hand.gflops is None else f"{hand.gflops:.1f}",
                 "-" if auto.gflops is None else f"{auto.gflops:.1f}",
                 "-" if hand.gflops is None or not roof else f"{hand.gflops / roof:.0%}"]
        rows.append(f"<tr><td>{esc(group)}</td>" +
                    "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>")
    heads = ("group", "hand (ms)", "autograd (ms)", "ratio", "ratio spread", "hand GFLOP/s",
             "autograd GFLOP/s", "roof")
    chart = plots.bench([(g, h.median, a.median) for g, h, a in table.pairs(measured)]) \
        if rows else "<p>No group holds both a hand and an autograd benchmark.</p>"
    series = _series(benchmarks)
    scaling = ""
    if series:
        fits = {name: table.cost_exponent(*zip(*sorted(points))) for name, points in
                series.items() if len({s for s, _ in points}) > 1}
        if fits:
            dims = sorted({name.rpartition("(")[2].split(",")[0].rstrip(")") for name in fits})
            scaling = ("<h2>Scaling</h2><p>Median time against size on log-log axes; the "
                       "exponent is the least-squares slope of log time against log size.</p>"
                       + plots.scaling({n: series[n] for n in fits}, fits, ", ".join(dims)))
    roofs = ", ".join(f"{d} {r:.1f} GFLOP/s" for d, r in sorted(rates.items()))
    # The page has only the run itself: its probes are compared with their own best.
    warned = "".join(f'<p class="bad">{esc(line)}</p>'
                     for line in load_warnings(roof_rates(benchmarks), {}))
    return html_page("handgrad benchmarks", (
        '<nav><a href="index.html">&larr; every derivation</a></nav>'
        "<h1>Benchmarks: hand against autograd</h1>"
        f"<p>{'<br>'.join(esc(line) for line in _machine(data))}<br>"
        f"{esc(data.get('datetime', ''))}; GEMM rate (the roof): {esc(roofs or 'not timed')}"
        "</p><p>Medians of pytest-benchmark, hand and autograd timed round by round in turn "
        "in one run; ratio = hand / autograd (below 1: the hand code is faster); the spread "
        "is the range of ratios the quartiles of the two sides allow; roof: the hand "
        "GFLOP/s as a fraction of the best GEMM rate of the run in that dtype.</p>"
        f"{warned}{chart}<table><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>"
        f"{''.join(rows)}</table>{scaling}"))
