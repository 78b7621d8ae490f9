"""The only pytest glue: options, parametrization from the derivation registry, profiles."""

from __future__ import annotations

import pytest
from hypothesis import settings

import handgrad
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
        params = [pytest.param((r, c), id=f"{r.name}[{c.origin}{i}]")
                  for r in records if r.expect == "pass"
                  for i, c in enumerate(sample_cases(r, seed, count))]
        metafunc.parametrize("right_case", params)
    if "right_record" in metafunc.fixturenames:
        metafunc.parametrize("right_record", [r for r in records if r.expect == "pass"],
                             ids=lambda r: r.name)
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
    """hand/autograd median-time ratio of every benchmark group measured in this run."""
    session = getattr(config, "_benchmarksession", None)
    groups: dict[str, dict[str, float]] = {}
    for bench in getattr(session, "benchmarks", []) or []:
        side = "hand" if "hand" in bench.name else "autograd" if "autograd" in bench.name else None
        if side and bench.stats and bench.stats.rounds:
            groups.setdefault(bench.group, {})[side] = bench.stats.median
    rows = [(g, t["hand"], t["autograd"]) for g, t in sorted(groups.items()) if len(t) == 2]
    if not rows:
        return
    terminalreporter.section("hand / autograd (median times, same run)")
    for group, hand, auto in rows:
        terminalreporter.write_line(f"{group:60s} hand {hand * 1e3:9.3f} ms  autograd "
                                    f"{auto * 1e3:9.3f} ms  ratio {hand / auto:5.2f}")
