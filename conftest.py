"""This repository's pytest glue: the Hypothesis profile, the parametrizations over its own
records and benchmarks, the benchmark summary. Options and the record checks come from
handgrad's plugin (handgrad/pytest_plugin.py)."""

from __future__ import annotations

import pytest
from hypothesis import settings

import handgrad
from handgrad.bench import machine
from handgrad.bench import summary as bench_summary

settings.register_profile("handgrad", deadline=None, derandomize=True, database=None)
settings.load_profile("handgrad")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """This repository's own parametrizations: its records (for the documentation tests) and
    its benchmarks. The checks of every record come from handgrad's pytest plugin, which
    collects derivations/ by path ([tool.handgrad] in pyproject.toml)."""
    if "record" in metafunc.fixturenames:
        metafunc.parametrize("record", handgrad.derivations(), ids=lambda r: r.name)
    if "bench_case" in metafunc.fixturenames:
        params = [pytest.param((r, dims, dtype), id=f"{r.name}-{dtype}-" +
                               ",".join(f"{k}={v}" for k, v in dims.items()))
                  for r in handgrad.derivations() for dims in r.bench
                  for dtype in ("float64", "float32")]
        metafunc.parametrize("bench_case", params)


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved benchmark runs (``--benchmark-save``) record the SIMD level, the BLAS libraries with
    the kernels they chose and the thread counts, beside pytest-benchmark's own CPU fields."""
    machine_info["handgrad"] = machine()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The machine, then hand/autograd median-time ratio, GFLOP/s and roof fraction of every
    benchmark group, then the cost exponent of every scaling series."""
    session = getattr(config, "_benchmarksession", None)
    lines = bench_summary(getattr(session, "benchmarks", []) or [])
    if lines:
        terminalreporter.section("hand / autograd (median times, same run)")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """The plugin's one item per page equation (``NAME[eq-TAG]``, about 970 over the catalogue,
    100 s on one core) runs in the slow set here; the default run checks the pages through the
    records' own equation check and tests/pages."""
    for item in items:
        if "[eq-" in item.name:
            item.add_marker(pytest.mark.slow)
