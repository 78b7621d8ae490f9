"""The benchmark summary's machine lines and cost exponents (handgrad/bench/): parsed from
given /proc/cpuinfo texts and synthetic timings whose exponent is known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from handgrad.bench import cost_exponent, cpu_model, machine, scaling_lines, simd_level, summary

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
"""


@pytest.mark.parametrize(("flags", "level"), [
    ("fpu sse4_2 avx avx2 fma avx512f avx512bw", "avx512"),
    ("fpu sse4_2 avx avx2 fma", "avx2"),
    ("fpu sse4_2 avx", "avx"),
    ("fpu sse4_2", "sse4.2"),
    ("fpu neon", "unknown"),
])
def test_simd_level_is_the_widest_flag(flags, level):
    assert simd_level(f"model name\t: x\nflags\t\t: {flags}\n") == level


def test_cpu_model_is_the_first_model_name():
    assert cpu_model(CPUINFO) == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert cpu_model("") == "unknown"


def test_machine_names_every_part(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = machine(path)
    assert info["cpu"].startswith("Intel(R) Xeon") and info["simd"] == "avx512"
    assert "threads" in info["numpy"] and "threads" in info["torch"]
    assert machine(tmp_path / "missing")["cpu"] == "unknown"


@pytest.mark.parametrize("exponent", [1.0, 2.0, 4.0])
def test_cost_exponent_recovers_a_power_law(exponent):
    sizes = [8, 16, 32, 64, 128]
    assert cost_exponent(sizes, [3e-6 * s**exponent for s in sizes]) == \
        pytest.approx(exponent, abs=1e-12)


def test_cost_exponent_is_the_least_squares_slope():
    """With noise, the slope of the fitted line: log t = 2 log s +- 0.1 alternately."""
    sizes = [2, 4, 8, 16]
    times = [s**2 * math.exp(0.1 * (-1) ** i) for i, s in enumerate(sizes)]
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    mx, my = sum(xs) / 4, sum(ys) / 4
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert cost_exponent(sizes, times) == pytest.approx(slope)
    assert slope != pytest.approx(2.0)


def test_cost_exponent_needs_two_sizes():
    with pytest.raises(ValueError, match="two or more"):
        cost_exponent([8, 8], [1.0, 2.0])


def series(name: str, size: int, median: float) -> SimpleNamespace:
    return SimpleNamespace(group=f"g {size}", extra_info={"series": name, "size": size,
                                                          "side": name, "dtype": "float64"},
                           stats=SimpleNamespace(median=median, rounds=3))


def test_summary_opens_with_the_machine_and_closes_with_the_exponents():
    benches = [series("rtrl", m, 1e-9 * m**4) for m in (8, 16, 32)] + \
              [series("bptt", m, 1e-7 * m**2) for m in (8, 16, 32)]
    lines = summary(benches)
    assert lines[0].startswith("machine: ") and lines[1].startswith("numpy BLAS: ")
    assert lines[2].startswith("torch: ")
    assert scaling_lines(benches) == lines[-2:]
    assert lines[-1].startswith("rtrl: exponent 4.00 over sizes 8: ")
    assert lines[-2].startswith("bptt: exponent 2.00 over sizes 8: ")
