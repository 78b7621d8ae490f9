"""Hand Jacobian- and Hessian-vector products against torch, and RTRL against BPTT.

As in ``tests/test_benchmarks.py``, each group holds exactly two benchmarks of the same
computation, shape and dtype, run one right after the other: the hand forward and ``jvp`` against
``torch.func.jvp`` of the reference, the hand forward and ``hvp`` against the reference's double
backward (or the record's ``hvp_reference``, for a curvature product that is not the Hessian), at
every ``bench`` dims of a record that has them. ``extra_info`` tags them for the summary
(``handgrad/bench.py``). RTRL and BPTT compute the same gradient at growing hidden sizes; each is
tagged as a scaling ``series``, and the summary fits its cost exponent in the hidden size. The
default run passes ``--benchmark-disable``, which runs each body once as a smoke test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import handgrad
from derivations import rnn, rnn_forward
from handgrad.autograd import run_reference, to_tensors
from handgrad.cases import Case, build_inputs, upstream


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """(record, dims, dtype, product) for every record with a hand jvp or hvp and bench dims."""
    if "linear_case" in metafunc.fixturenames:
        params = [pytest.param((r, dims, dtype, product),
                               id=f"{r.name}-{product}-{dtype}-" +
                               ",".join(f"{k}={v}" for k, v in dims.items()))
                  for r in handgrad.derivations() for dims in r.bench
                  for product in ("jvp", "hvp") if getattr(r, product) is not None
                  for dtype in ("float64", "float32")]
        metafunc.parametrize("linear_case", params)


def directions(record, inputs: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """A seeded direction for every differentiable input, uniform on [-1, 1)."""
    rng = np.random.default_rng(1)
    return {k: rng.uniform(-1.0, 1.0, np.shape(inputs[k])).astype(dtype)
            for k in record.differentiable}


@pytest.mark.parametrize("side", ["hand", "autograd"])
def test_linearisation(benchmark, linear_case, side):
    record, dims, dtype, product = linear_case
    case = Case.of(dims, 0, "bench")
    inputs = build_inputs(record, case, dtype)
    out, _ = record.forward(**inputs)
    dout = upstream(np.shape(out), case, dtype)
    v = directions(record, inputs, dtype)
    benchmark.group = f"{record.name} {product} {dtype} " + \
        ",".join(f"{k}={v}" for k, v in dims.items())
    benchmark.extra_info.update(side=side, dtype=dtype, flops=None, product=product)
    names = record.differentiable
    if side == "hand":

        def hand():
            _, cache = record.forward(**inputs)
            if product == "jvp":
                return record.jvp(v, cache)
            return record.hvp(dout, v, cache)

        result = benchmark(hand)
        if product == "hvp":
            assert set(result) == set(names)
        return
    tensors = to_tensors(record, inputs, dtype)
    v_tensors = {k: torch.from_numpy(v[k]) for k in names}
    up = torch.from_numpy(np.array(dout))
    if product == "jvp":
        fixed = {k: t for k, t in tensors.items() if k not in names}

        def program(*args):
            out, _ = run_reference(record, {**fixed, **dict(zip(names, args))})
            return out

        primals = tuple(tensors[k].detach() for k in names)
        tangents = tuple(v_tensors[k] for k in names)
        result = benchmark(lambda: torch.func.jvp(program, primals, tangents)[1])
        assert result.shape == np.shape(out)
    elif record.hvp_reference is not None:
        result = benchmark(record.hvp_reference, tensors, up, v_tensors)
        assert set(result) == set(names)
    else:
        leaves = [tensors[k] for k in names]

        def double_backward():
            out, _ = run_reference(record, tensors)
            grads = torch.autograd.grad((out * up).sum(), leaves, create_graph=True)
            inner = sum((g * v_tensors[k]).sum() for g, k in zip(grads, names))
            return torch.autograd.grad(inner, leaves)

        assert len(benchmark(double_backward)) == len(leaves)


HIDDEN_SIZES = (16, 32, 64, 96)
RTRL_DIMS = {"T": 16, "B": 2, "D": 8, "C": 4}
"""Short sequences and a small batch: RTRL's M^4 work per step makes a call at M = 128 take ~4 s
on the benchmark machine (0.7 s at M = 96); the exponents need the sizes, not long sequences.
At these sizes BPTT's O(M^2) products take microseconds, so its times, and its fitted exponent,
are mostly NumPy's per-call overhead of its T steps."""


@pytest.mark.parametrize("M", HIDDEN_SIZES)
@pytest.mark.parametrize("method", ["rtrl", "bptt"])
def test_rtrl_against_bptt(benchmark, method, M):
    """The forward and the full gradient of the RNN (parameters and h0), by RTRL or by BPTT."""
    record = next(r for r in rnn_forward.RECORDS if r.name == "rnn-rtrl-tanh-ce")
    dims = {**RTRL_DIMS, "M": M}
    case = Case.of(dims, 0, "bench")
    inputs = build_inputs(record, case, "float64")
    dout = upstream((), case, "float64")
    backward = rnn_forward.rtrl_backward if method == "rtrl" else rnn.backward
    benchmark.group = "rtrl-vs-bptt float64 " + ",".join(f"{k}={v}" for k, v in dims.items())
    benchmark.extra_info.update(side=method, series=f"{method} (hidden size M)", size=M,
                                dtype="float64", flops=None)

    def gradient():
        _, cache = record.forward(**inputs)
        return backward(dout, cache)

    grads = benchmark(gradient)
    assert {"U", "W", "b", "h0", "V", "c"} <= set(grads)
