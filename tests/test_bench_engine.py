"""handgrad/bench/'s engine on stand-ins whose behaviour is known: the two sides of a pair are
timed round by round in turn with one round count, through pytest-benchmark's calibration and
statistics; a pair whose sides disagree is an error, not a timing; the GEMM history keeps the
best rate and the loaded-machine warning follows from it; the pairs of the catalogue are
planned by kind."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

import handgrad
from handgrad.bench import host, pairs, runner


def bench_options(**given) -> dict:
    parser = argparse.ArgumentParser()
    runner.add_options(parser)
    args = parser.parse_args([f"--benchmark-{k.replace('_', '-')}={v}" for k, v in given.items()])
    return runner.options_from(args)


def test_the_options_are_pytest_benchmarks_own_with_its_defaults():
    options = bench_options()
    assert options["min_rounds"] == 5 and float(options["max_time"]) == 1.0
    assert bench_options(min_rounds=7)["min_rounds"] == 7


def test_sides_alternate_by_rounds_with_one_round_count():
    """Calls of 0.3 ms outlast pytest-benchmark's calibration target (10 x 5 us), so each
    side calibrates in one call and each round is one call: the order of the calls is the
    order of the rounds."""
    calls: list[str] = []

    def side(name):
        return lambda: calls.append(name) or time.sleep(3e-4) or name

    bench = runner.Bench.standalone(bench_options(max_time=0.001, min_rounds=6))
    hand = bench.fixture("h", "h", "g", {"side": "hand", "dtype": "float64"})
    auto = bench.fixture("a", "a", "g", {"side": "autograd", "dtype": "float64"})
    assert runner.interleaved(hand, auto, side("h"), side("a")) == ("h", "a")
    rounds = hand.stats.stats.rounds
    assert rounds == auto.stats.stats.rounds == 6  # max_time 1 ms is spent at once
    assert calls[:2] == ["h", "a"] and calls[-2:] == ["h", "a"]  # calibration, results
    assert calls[2:-2] == ["h", "a", "a", "h"] * (rounds // 2)
    assert [b.extra_info["side"] for b in bench.benchmarks] == ["hand", "autograd"]


def test_a_disabled_bench_runs_each_side_once():
    bench = runner.Bench(bench_options(), [], disabled=True)
    count = {"h": 0, "a": 0}
    fixtures = [bench.fixture(n, n, "g", {}) for n in "ha"]

    def side(name):
        return lambda: count.__setitem__(name, count[name] + 1)

    runner.interleaved(*fixtures, side("h"), side("a"))
    assert count == {"h": 1, "a": 1} and bench.benchmarks == []


def test_a_pair_that_disagrees_is_an_error_and_saves_no_timing():
    record = next(r for r in handgrad.derivations() if r.name == "mlp-ce-tanh")
    good = pairs.backward(record, dict(record.bench[0]), "float64")
    missing = pairs.Pair(good.record, good.kind, good.dims, good.dtype, good.flops,
                         lambda: {k: v for k, v in good.hand().items() if k != "W1"},
                         good.autograd, good.agree)
    bench = runner.Bench.standalone(bench_options(max_time=0.001, min_rounds=1))
    with pytest.raises(AssertionError, match="W1"):
        runner.time_pair(bench, missing)
    assert runner.as_json(bench.benchmarks)["benchmarks"] == []


def test_the_catalogue_is_planned_by_kind():
    records = {r.name: r for r in handgrad.derivations()}
    planned = {(r.name, kind) for r, _, _, kind in pairs.plan(records.values())}
    assert ("mlp-ce-tanh", "backward") in planned
    assert ("fn-rnn", "function") in planned and ("fn-rnn", "backward") in planned
    assert any(kind == "jvp" for _, kind in planned) and any(k == "hvp" for _, k in planned)
    assert all(records[name].bench for name, _ in planned)
    at = pairs.plan([records["mlp-ce-tanh"]], {"N": 8}, ("float64",))
    assert [dims["N"] for _, dims, _, _ in at] == [8] and at[0][1]["d"] == 784


def test_the_function_pair_agrees_at_its_bench_dims():
    record = next(r for r in handgrad.derivations() if r.name == "fn-softmax-ce")
    pair = pairs.function(record, dict(record.bench[0]), "float32")
    pair.agree(pair.hand(), pair.autograd())


INFO = {"cpu": "Test CPU", "numpy": "openblas", "torch": "torch"}


def test_the_gemm_history_keeps_the_best_rate(tmp_path):
    path = tmp_path / "rates.json"
    host.remember_rates(INFO, {"float64 numpy": 100.0}, path)
    host.remember_rates(INFO, {"float64 numpy": 80.0, "float32 numpy": 200.0}, path)
    usual = host.usual_rates(INFO, path)
    assert usual["float64 numpy"]["gflops"] == 100.0 and usual["float32 numpy"]["gflops"] == 200
    assert host.usual_rates({**INFO, "cpu": "Other"}, path) == {}
    path.write_text("{not json")
    assert host.usual_rates(INFO, path) == {}
    host.remember_rates(INFO, {"float64 numpy": 1.0}, path)  # a corrupt file is replaced
    assert json.loads(path.read_text())


@pytest.mark.parametrize(("probes", "stored", "warned"), [
    ([100.0, 95.0], None, False),          # steady, no history
    ([100.0, 40.0], None, True),           # the load came during the run
    ([50.0, 52.0], 100.0, True),           # the whole run at half the usual rate
    ([90.0, 85.0], 100.0, False),          # within the normal spread
])
def test_loaded_machine_warning(probes, stored, warned):
    usual = {"float64 numpy": {"gflops": stored, "when": "then"}} if stored else {}
    lines = host.load_warnings({"float64 numpy": probes}, usual)
    assert bool(lines) == warned
    if warned:
        assert f"{min(probes):.1f} GFLOP/s" in lines[0]


def test_roof_rates_are_read_from_the_roof_probes():
    bench = runner.Bench.standalone(bench_options(max_time=0.001, min_rounds=1))
    fixture = bench.fixture("gemm", "gemm", "gemm", {"side": "roof", "library": "numpy",
                                                      "dtype": "float64", "flops": 2e6})
    fixture(np.matmul, np.ones((100, 100)), np.ones((100, 100)))
    rates = runner.roof_rates(bench.benchmarks)["float64 numpy"]
    assert rates == [pytest.approx(2e6 / bench.benchmarks[0].stats.median / 1e9)]
