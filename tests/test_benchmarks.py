"""Hand forward+backward against reference forward+autograd, at every record's ``bench`` dims.

Each group holds exactly these two benchmarks, same kernel, shape and dtype, run one right after
the other (the machine's load drifts). ``gemm`` groups time a large square matrix product
(NumPy's and torch's), the roof of the session, first and again last. Every benchmark carries
``extra_info`` (side, dtype, FLOP count) for the summary at the end of a benchmark run
(``handgrad/bench.py``, called from conftest.py): per group the hand/autograd ratio of medians,
GFLOP/s of both, and the hand kernel's fraction of the GEMM rate. The default run passes
``--benchmark-disable``, which runs each body once as a smoke test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handgrad.autograd import run_reference, to_tensors
from handgrad.cases import Case, build_inputs, full_dims, upstream

GEMM_SIZE = 1024
"""Square matrices this large run NumPy's and torch's GEMM at their peak rate on the benchmark
machine (2048 is no faster), in ~20 ms in float64."""


def _gemm_roof(benchmark, dtype: str, library: str, when: str) -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1.0, 1.0, (GEMM_SIZE, GEMM_SIZE)).astype(dtype) for _ in range(2))
    benchmark.group = f"gemm {dtype} n={GEMM_SIZE} {when}"
    benchmark.extra_info.update(side="roof", library=library, dtype=dtype,
                                flops=2.0 * GEMM_SIZE**3)
    if library == "numpy":
        product = benchmark(np.matmul, a, b)
    else:
        product = benchmark(torch.matmul, torch.from_numpy(a), torch.from_numpy(b)).numpy()
    # Both products must be right, or their rates mean nothing: float32 sums of 1024 terms of
    # size <= 1 carry rounding errors around sqrt(1024) * 6e-8 relative to the terms.
    np.testing.assert_allclose(product[:4, :4], a[:4] @ b[:, :4], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gemm_roof_first(benchmark, dtype, library):
    _gemm_roof(benchmark, dtype, library, "first")


@pytest.mark.parametrize("side", ["hand", "autograd"])
def test_forward_backward(benchmark, bench_case, side):
    record, dims, dtype = bench_case
    case = Case.of(dims, 0, "bench")
    inputs = build_inputs(record, case, dtype)
    out, _ = record.forward(**inputs)
    dout = upstream(np.shape(out), case, dtype)
    benchmark.group = f"{record.name} {dtype} " + ",".join(f"{k}={v}" for k, v in dims.items())
    flops = record.flops(full_dims(record, dims)) if record.flops else None
    benchmark.extra_info.update(side=side, dtype=dtype, flops=flops)
    if side == "hand":

        def hand():
            _, cache = record.forward(**inputs)
            return record.backward(dout, cache)

        grads = benchmark(hand)
        assert set(record.differentiable) <= set(grads)
    else:
        tensors = to_tensors(record, inputs, dtype)
        leaves = [tensors[k] for k in record.differentiable]
        up = torch.from_numpy(np.array(dout))

        def autograd():
            out, _ = run_reference(record, tensors)
            return torch.autograd.grad((out * up).sum(), leaves)

        assert len(benchmark(autograd)) == len(leaves)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gemm_roof_last(benchmark, dtype, library):
    _gemm_roof(benchmark, dtype, library, "last")
