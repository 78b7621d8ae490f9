"""The benchmark summary (handgrad/bench/table.py) on hand-made benchmark records: the ratio,
GFLOP/s and roof fraction it prints must follow from the medians and FLOP counts it is given."""

from __future__ import annotations

from types import SimpleNamespace

from handgrad.bench import gemm_rates, summary, timings


def bench(group: str, median: float, rounds: int = 5, **info) -> SimpleNamespace:
    """A stand-in for pytest-benchmark's Metadata: group, extra_info, stats."""
    return SimpleNamespace(group=group, extra_info=info,
                           stats=SimpleNamespace(median=median, rounds=rounds))


def session() -> list[SimpleNamespace]:
    return [
        bench("gemm float64 first", 0.02, side="roof", library="numpy", dtype="float64",
              flops=2e9),                                                     # 100 GFLOP/s
        bench("gemm float64 last", 0.04, side="roof", library="numpy", dtype="float64",
              flops=2e9),                                                     # 50 GFLOP/s
        bench("conv float64", 0.004, side="hand", dtype="float64", flops=1e8),  # 25 GFLOP/s
        bench("conv float64", 0.005, side="autograd", dtype="float64", flops=1e8),
        bench("conv float32", 0.001, side="hand", dtype="float32", flops=1e8),  # no float32 roof
        bench("conv float32", 0.002, side="autograd", dtype="float32", flops=1e8),
        bench("lonely float64", 0.001, side="hand", dtype="float64", flops=None),
        bench("disabled float64", 0.001, rounds=0, side="hand", dtype="float64", flops=1.0),
        bench("untagged", 0.001),
    ]


def test_roof_is_the_best_gemm_rate_of_each_dtype():
    assert gemm_rates(timings(session())) == {"float64": 100.0}


def test_group_line_has_ratio_rates_and_roof_fraction():
    lines = summary(session())
    conv64 = next(line for line in lines if line.startswith("conv float64"))
    # hand 4 ms, autograd 5 ms: ratio 0.80, 25 and 20 GFLOP/s, 25 % of the 100 GFLOP/s roof.
    # No quartiles in these stand-ins: the spread column says "-".
    assert conv64.split()[2:] == ["4.000", "5.000", "0.80", "25.0", "20.0", "25%", "-"]
    conv32 = next(line for line in lines if line.startswith("conv float32"))
    assert conv32.split()[-2] == "-"  # no float32 roof measured


def test_spread_is_the_ratio_range_of_the_quartiles():
    """hand quartiles 3.8/4.4 ms, autograd 4.8/5.5 ms: ratios from 3.8/5.5 to 4.4/4.8."""
    def quartiled(side, median, q1, q3):
        return SimpleNamespace(group="g", extra_info={"side": side, "dtype": "float64"},
                               stats=SimpleNamespace(median=median, rounds=9, q1=q1, q3=q3))

    lines = summary([quartiled("hand", 4e-3, 3.8e-3, 4.4e-3),
                     quartiled("autograd", 5e-3, 4.8e-3, 5.5e-3)])
    line = next(line for line in lines if line.startswith("g "))
    assert line.split()[-3:] == [f"{3.8 / 5.5:.2f}", "-", f"{4.4 / 4.8:.2f}"]


def test_groups_without_both_sides_or_rounds_are_left_out():
    text = "\n".join(summary(session()))
    assert "lonely" not in text and "disabled" not in text and "untagged" not in text
    assert summary([bench("x", 0.1, rounds=0, side="hand", dtype="float64", flops=1.0)]) == []


def test_sandbox_line_follows_from_the_three_medians():
    """Uncontained 100 ms, contained 110 ms (paired uncontained 104 ms), a submission 400 ms:
    +10 ms is 2.5 %, +6 ms against the paired starts is 1.5 %."""
    lines = summary([
        bench("sandbox", 0.100, side="uncontained start", dtype="-"),
        bench("sandbox", 0.110, side="contained start", dtype="-", paired_uncontained=0.104),
        bench("sandbox", 0.400, side="submission", dtype="-"),
        bench("sandbox alone", 0.1, side="contained start", dtype="-"),  # no pair: no line
    ])
    (line,) = [x for x in lines if x.startswith("sandbox")]
    assert "100.0 ms uncontained, 110.0 ms in bubblewrap (+10.0 ms, 2.5% of grading" in line
    assert "(104.0 ms): +6.0 ms, 1.5%" in line
