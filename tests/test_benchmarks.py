"""Hand forward+backward against reference forward+autograd, at every record's ``bench`` dims.

Each group holds exactly these two benchmarks, same kernel, shape and dtype. The ratio
hand/autograd per group is printed at the end of a benchmark run (see conftest.py). The default
run passes ``--benchmark-disable``, which runs each body once as a smoke test.
"""

from __future__ import annotations

import numpy as np
import torch

from handgrad.autograd import run_reference, to_tensors
from handgrad.cases import Case, build_inputs, upstream


def _setup(bench_case):
    record, dims, dtype = bench_case
    case = Case.of(dims, 0, "bench")
    inputs = build_inputs(record, case, dtype)
    out, _ = record.forward(**inputs)
    return record, inputs, upstream(np.shape(out), case, dtype), dtype


def _group(record, dims, dtype) -> str:
    return f"{record.name} {dtype} " + ",".join(f"{k}={v}" for k, v in dims.items())


def test_hand_forward_backward(benchmark, bench_case):
    record, inputs, dout, dtype = _setup(bench_case)
    benchmark.group = _group(*bench_case)

    def hand():
        _, cache = record.forward(**inputs)
        return record.backward(dout, cache)

    grads = benchmark(hand)
    assert set(record.differentiable) <= set(grads)


def test_autograd_forward_backward(benchmark, bench_case):
    record, inputs, dout, dtype = _setup(bench_case)
    benchmark.group = _group(*bench_case)
    tensors = to_tensors(record, inputs, dtype)
    leaves = [tensors[k] for k in record.differentiable]
    up = torch.from_numpy(np.array(dout))

    def autograd():
        out, _ = run_reference(record, tensors)
        return torch.autograd.grad((out * up).sum(), leaves)

    grads = benchmark(autograd)
    assert len(grads) == len(leaves)
