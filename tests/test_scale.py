"""Scale, measured with pytest-benchmark (``pytest tests/test_scale.py --benchmark-enable``):
the cost of a full check against the parameter count (directional finite differences and the
Taylor test need a fixed number of forward passes whatever the size), a one-million-parameter
MLP checked with every oracle and a single wrong entry of W1 still caught, and a class's worth
of submissions (200 folders) checked on every core. Without --benchmark-enable each body runs
once, at a small size, as a smoke test."""

from __future__ import annotations

import dataclasses
import os
import textwrap

import numpy as np
import pytest

from handgrad.cases import Case
from handgrad.check import CHECKS, check_case
from handgrad.discovery import discover_sources, find
from handgrad.parallel import Options, check_many, jobs_from

BIG = {"N": 64, "d": 784, "M": 1024, "C": 10}
ORACLES = ("contract", "autograd", "fd", "complex-step", "taylor", "descent")


def mlp(dims: dict[str, int]):
    base = find("mlp-ce-tanh")
    return dataclasses.replace(base, name=f"mlp-M{dims['M']}",
                               dims={k: (v, v) for k, v in dims.items()}, bench=(), cases=())


def parameters(record, dims) -> int:
    return sum(int(np.prod(record.shape_of(k, dims))) for k in record.differentiable)


def enabled(benchmark) -> bool:
    return not getattr(benchmark, "disabled", True)


@pytest.mark.parametrize("oracle", [*ORACLES, "all"])
def test_cost_per_oracle_of_a_million_parameter_mlp(benchmark, oracle):
    dims = BIG if enabled(benchmark) else {**BIG, "d": 20, "M": 16}
    record, case = mlp(dims), Case.of(dims, 1)
    checks = CHECKS if oracle == "all" else ("contract", oracle)
    benchmark.group = f"check one case of a {parameters(record, dims):,}-parameter MLP"
    benchmark.extra_info["parameters"] = parameters(record, dims)
    results = benchmark.pedantic(check_case, args=(record, case, checks), rounds=3,
                                 warmup_rounds=0)
    assert all(r.passed for r in results), [r for r in results if not r.passed][:3]


@pytest.mark.parametrize("hidden", [16, 64, 256, 1024, 4096])
def test_check_time_against_parameter_count(benchmark, hidden):
    if not enabled(benchmark) and hidden > 64:
        pytest.skip("the large sizes run with --benchmark-enable")
    dims = {**BIG, "M": hidden}
    record, case = mlp(dims), Case.of(dims, 2)
    benchmark.group = "full check against parameter count"
    benchmark.extra_info["parameters"] = parameters(record, dims)
    results = benchmark.pedantic(check_case, args=(record, case), rounds=2, warmup_rounds=0)
    assert all(r.passed for r in results)


@pytest.mark.slow
def test_one_wrong_entry_of_w1_is_caught_in_a_million_parameters():
    """Every oracle that sees W1 as a whole (autograd, directional finite differences, the
    complex step along directions, the Taylor test) rejects one entry off by a tenth of the
    largest gradient."""
    record = mlp(BIG)

    def backward(dout, cache):
        grads = dict(record.backward(dout, cache))
        grads["W1"] = grads["W1"].copy()
        grads["W1"][3, 5] += 0.1 * np.abs(grads["W1"]).max()
        return grads

    wrong = dataclasses.replace(record, name="mlp-1m-one-entry", backward=backward)
    results = check_case(wrong, Case.of(BIG, 1))
    failed = {(r.check, r.tensor) for r in results if r.status == "fail"}
    assert {("autograd", "W1"), ("fd", "W1"), ("complex-step", "W1")} <= failed, failed
    entries = [r for r in results if (r.check, r.tensor) == ("autograd", "W1")]
    assert entries[0].kind == "entries" and entries[0].worst_index == (3, 5)


LAYER = '''
import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0){mistake}


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward(dout, x):
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx
'''

MISTAKES = ["", " * 2", " / len(x)"]  # right, a factor 2, a mean for a sum

RECORDS = '''
import torch
from handgrad import adapt

import layers

RECORDS = [
    adapt.pair("affine", layers.affine_forward, layers.affine_backward,
               shapes="x: N D, w: D M, b: M", dims={"N": (1, 4), "D": (1, 5), "M": (1, 3)},
               reference=lambda x, w, b: x @ w + b),
    adapt.pair("relu", layers.relu_forward, layers.relu_backward, shapes="x: N D",
               dims={"N": (1, 4), "D": (1, 5)}, reference=torch.relu),
]
'''


def test_many_submissions_on_every_core(benchmark, tmp_path):
    """One folder per student, right and mutated copies; every folder gets its verdict."""
    count = 200 if enabled(benchmark) else 6
    for i in range(count):
        folder = tmp_path / f"student{i:03d}"
        folder.mkdir()
        mistake = MISTAKES[i % len(MISTAKES)]
        (folder / "layers.py").write_text(textwrap.dedent(LAYER.replace("{mistake}", mistake)))
        (folder / "records.py").write_text(textwrap.dedent(RECORDS))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        sources = discover_sources(sorted(p.name for p in tmp_path.iterdir()))
        records = [(path, r) for path, rs, _ in sources for r in rs]
        jobs = jobs_from("auto")
        benchmark.group = f"{count} submission folders, -j {jobs}"
        reports = benchmark.pedantic(check_many, args=(records, Options(cases=2), jobs),
                                     kwargs={"timeout": 120}, rounds=1, warmup_rounds=0)
    finally:
        os.chdir(cwd)
    if enabled(benchmark):
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["folders per second per core"] = count / seconds / jobs
    verdicts = {}
    for (path, record), report in zip(records, reports):
        verdicts.setdefault(path, []).append((record.name, report.passed))
    for i, path in enumerate(sorted(verdicts)):
        right = MISTAKES[i % len(MISTAKES)] == ""
        assert dict(verdicts[path]) == {"affine": right, "relu": True}, (path, verdicts[path])
