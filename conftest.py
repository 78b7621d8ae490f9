"""The only pytest glue: options, parametrization from the derivation registry, profiles."""

from __future__ import annotations

import pytest
from hypothesis import settings

import handgrad
from handgrad.bench import summary as bench_summary
from handgrad.cases import sample_cases

settings.register_profile("handgrad", deadline=None, derandomize=True, database=None)
settings.load_profile("handgrad")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handgrad")
    group.addoption("--grad-seed", type=int, default=0, help="seed of the case sampler")
    group.addoption("--grad-cases", type=int, default=4, help="cases per derivation")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    records = handgrad.derivations()
    seed = metafunc.config.getoption("--grad-seed")
    count = metafunc.config.getoption("--grad-cases")
    if "right_case" in metafunc.fixturenames:
        params = [pytest.param((r, c), id=f"{r.name}[{c.origin}:{c.describe()}]")
                  for r in records if r.expect == "pass" for c in sample_cases(r, seed, count)]
        metafunc.parametrize("right_case", params)
    if "erratum" in metafunc.fixturenames:
        metafunc.parametrize("erratum", [r for r in records if r.expect == "reject"],
                             ids=lambda r: r.name)
    if "record" in metafunc.fixturenames:
        metafunc.parametrize("record", records, ids=lambda r: r.name)
    if "bench_case" in metafunc.fixturenames:
        params = [pytest.param((r, dims, dtype), id=f"{r.name}-{dtype}-" +
                               ",".join(f"{k}={v}" for k, v in dims.items()))
                  for r in records for dims in r.bench for dtype in ("float64", "float32")]
        metafunc.parametrize("bench_case", params)


@pytest.fixture
def grad_seed(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--grad-seed")


@pytest.fixture
def grad_cases(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--grad-cases")


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """hand/autograd median-time ratio, GFLOP/s and roof fraction of every benchmark group."""
    session = getattr(config, "_benchmarksession", None)
    lines = bench_summary(getattr(session, "benchmarks", []) or [])
    if lines:
        terminalreporter.section("hand / autograd (median times, same run)")
        for line in lines:
            terminalreporter.write_line(line)
