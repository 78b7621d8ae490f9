"""Timing with pytest-benchmark's engine: its :class:`BenchmarkFixture` calibrates each side
(iterations per round until a round outlasts the timer's resolution, its ``--benchmark-*``
options and defaults), its :class:`Metadata` holds the rounds and computes the statistics, and
its JSON is what ``pytest-benchmark compare`` and ``--benchmark-compare`` read.

What handgrad adds is the order: the hand and the autograd side of a pair are timed round by
round in turn (hand, autograd, autograd, hand, ...), not all of one then all of the other, so
a load that comes and goes on a shared machine falls on both alike; and not call by call
inside one loop either, because OpenBLAS's and torch's idle threads spin after each call and
slow the other library's next call (3x measured on a 2-core VM). The pair gets one round count
for both sides: pytest-benchmark's rule (``max_time`` over a round's duration, at least
``min_rounds``) applied to the two sides' rounds together.

Uses the fixture's calibration and runner methods (``_calibrate_timer``, ``_make_runner``,
``_make_stats``), private to pytest-benchmark 5; ``pyproject.toml`` pins the major version.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import ceil
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest_benchmark.plugin as benchmark_plugin
from pytest_benchmark.fixture import BenchmarkFixture, PauseInstrumentation
from pytest_benchmark.logger import Logger
from pytest_benchmark.utils import SecondsDecimal, load_timer

from handgrad.bench.pairs import Pair, dims_text

RUN_OPTIONS = ("min-time", "max-time", "min-rounds", "timer", "calibration-precision",
               "warmup", "warmup-iterations", "disable-gc")
"""The ``--benchmark-*`` options of pytest-benchmark that ``handgrad bench`` takes too, with
pytest-benchmark's own types, defaults and help."""

GEMM_SIZE = 1024
"""Square matrices this large run NumPy's and torch's GEMM at their peak rate on the benchmark
machine (2048 is no faster), in ~20 ms in float64."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add pytest-benchmark's run options (:data:`RUN_OPTIONS`) to an argparse parser, as
    pytest-benchmark declares them."""

    class Group:
        def addoption(self, *names, **kwargs):
            if names[0].removeprefix("--benchmark-") in RUN_OPTIONS:
                parser.add_argument(*names, **kwargs)

    benchmark_plugin.pytest_addoption(SimpleNamespace(getgroup=lambda *_: Group()))


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The fixture options of those arguments, converted as pytest-benchmark's session does."""
    return {"min_time": SecondsDecimal(args.benchmark_min_time),
            "min_rounds": args.benchmark_min_rounds,
            "max_time": SecondsDecimal(args.benchmark_max_time),
            "precision": None, "confidence": None,
            "timer": load_timer(args.benchmark_timer),
            "calibration_precision": args.benchmark_calibration_precision,
            "disable_gc": args.benchmark_disable_gc, "warmup": args.benchmark_warmup,
            "warmup_iterations": args.benchmark_warmup_iterations,
            "cprofile": False, "cprofile_loops": None, "cprofile_dump": False}


@dataclass
class Bench:
    """Where benchmarks go: pytest-benchmark's options, its list of results (a session's
    ``benchmarks``), its logger, and whether timing is off (a smoke run: each callable once)."""

    options: Mapping[str, Any]
    benchmarks: list
    logger: Any = None
    disabled: bool = False

    @classmethod
    def standalone(cls, options: Mapping[str, Any]) -> Bench:
        return cls(options, [], Logger(Logger.QUIET))

    def fixture(self, name: str, fullname: str, group: str, extra_info: Mapping[str, Any]
                ) -> BenchmarkFixture:
        fixture = BenchmarkFixture(SimpleNamespace(name=name, nodeid=fullname),
                                   add_stats=self.benchmarks.append, logger=self.logger,
                                   warner=warnings.warn, disabled=self.disabled,
                                   **self.options)
        fixture.group = group
        fixture.extra_info.update(extra_info)
        return fixture


def interleaved(hand: BenchmarkFixture, auto: BenchmarkFixture, hand_fn: Callable[[], Any],
                auto_fn: Callable[[], Any]) -> tuple[Any, Any]:
    """Time two callables round by round in turn (see the module docstring); return one result
    of each (also when the fixtures are disabled: then nothing is timed)."""
    fixtures, functions = (hand, auto), (hand_fn, auto_fn)
    if hand.enabled:
        runners = [f._make_runner(fn, (), {}) for f, fn in zip(fixtures, functions)]
        with PauseInstrumentation():
            calibrated = [f._calibrate_timer(r) for f, r in zip(fixtures, runners)]
        round_seconds = sum(duration for duration, _, _ in calibrated)
        rounds = max(ceil(hand._max_time / round_seconds), hand._min_rounds)
        stats = [f._make_stats(iterations) for f, (_, iterations, _) in zip(fixtures, calibrated)]
        loops = [loops_range for _, _, loops_range in calibrated]
        with PauseInstrumentation():
            if hand._warmup:
                warmup_rounds = min(rounds, max(1, int(hand._warmup / max(
                    iterations for _, iterations, _ in calibrated))))
                for _ in range(warmup_rounds):
                    for runner, loop in zip(runners, loops):
                        runner(loop)
            for i in range(rounds):
                for j in ((0, 1) if i % 2 == 0 else (1, 0)):
                    stats[j].update(runners[j](loops[j]))
    for f in fixtures:
        f._mode = "handgrad interleaved"
    return hand_fn(), auto_fn()


def time_pair(bench: Bench, pair: Pair, where: str = "", series: str | None = None,
              size: float | None = None) -> None:
    """Time one pair into ``bench``; raises when the two sides do not agree. Each side is named
    ``record[kind-dtype-dims-side]`` (under ``where``, a pytest node id, in its full name).
    ``series`` and ``size`` tag a scaling series (``"<record> hand (<series>)"`` and the same
    for autograd)."""
    sides = []
    for side in ("hand", "autograd"):
        info = pair.extra_info(side)
        if series is not None:
            info.update(series=f"{pair.record} {side} ({series})", size=size)
        name = f"{pair.record}[{pair.kind}-{pair.dtype}-{dims_text(pair.dims)}-{side}]"
        sides.append(bench.fixture(name, f"{where}::{name}" if where else name, pair.group,
                                   info))
    try:
        hand_result, auto_result = interleaved(*sides, pair.hand, pair.autograd)
        pair.agree(hand_result, auto_result)
    except BaseException:
        for f in sides:
            f.has_error = True
        raise


def time_roof(bench: Bench, dtype: str, library: str, when: str) -> None:
    """Time a :data:`GEMM_SIZE` square product (NumPy's or torch's) with pytest-benchmark's own
    loop, tagged as a ``roof`` of the run."""
    import torch

    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1.0, 1.0, (GEMM_SIZE, GEMM_SIZE)).astype(dtype) for _ in range(2))
    group = f"gemm {dtype} n={GEMM_SIZE} {when}"
    fixture = bench.fixture(f"gemm[{library}-{dtype}-{when}]", f"gemm[{library}-{dtype}-{when}]",
                            group, {"side": "roof", "library": library, "dtype": dtype,
                                    "flops": 2.0 * GEMM_SIZE**3})
    if library == "numpy":
        product = fixture(np.matmul, a, b)
    else:
        product = fixture(torch.matmul, torch.from_numpy(a), torch.from_numpy(b)).numpy()
    # Both products must be right, or their rates mean nothing: float32 sums of 1024 terms of
    # size <= 1 carry rounding errors around sqrt(1024) * 6e-8 relative to the terms.
    np.testing.assert_allclose(product[:4, :4], a[:4] @ b[:, :4], rtol=1e-4, atol=1e-4)


def roof_rates(benchmarks) -> dict[str, list[float]]:
    """``"dtype library"`` -> the GFLOP/s of every roof probe that ran."""
    rates: dict[str, list[float]] = {}
    for b in benchmarks:
        info = getattr(b, "extra_info", {}) or {}
        if info.get("side") == "roof" and b.stats and b.stats.rounds:
            rates.setdefault(f"{info['dtype']} {info['library']}", []).append(
                info["flops"] / b.stats.median / 1e9)
    return rates


def as_json(benchmarks, machine_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """pytest-benchmark's JSON of a run (its own generator, machine and commit info), with
    handgrad's machine lines under ``machine_info["handgrad"]``."""
    from pytest_benchmark.utils import get_commit_info

    from handgrad.bench.host import machine

    info = benchmark_plugin.pytest_benchmark_generate_machine_info()
    info["handgrad"] = dict(machine_info or machine())
    return benchmark_plugin.pytest_benchmark_generate_json(
        config=None, benchmarks=[b for b in benchmarks if b.stats], include_data=True,
        machine_info=info, commit_info=get_commit_info())


def load_lines(benchmarks, info: Mapping[str, str]) -> list[str]:
    """After a run with roof probes: the loaded-machine warnings (:func:`host.load_warnings`)
    and what "usual" meant; the run's best rates are remembered for the next run."""
    from handgrad.bench import host

    rates = roof_rates(benchmarks)
    if not rates:
        return []
    usual = host.usual_rates(info)
    lines = host.load_warnings(rates, usual)
    host.remember_rates(info, {k: max(v) for k, v in rates.items()})
    where = host.rates_file()
    lines.append(f"usual GEMM rate: the higher of this run's best probe and the best of earlier "
                 f"runs on this machine, kept in {where}"
                 if usual else f"usual GEMM rate: none stored yet for this machine (now kept "
                 f"in {where}); this run was compared with its own best probe")
    return lines
