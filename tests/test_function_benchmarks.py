"""Custom autograd Functions against autograd of their plain-torch reference, in torch alone.

``test_benchmarks.py`` times every record with ``bench`` dims through the NumPy boundary of the
record (arrays in, arrays out); here a Function record (``adapt.function``) is timed the way it
is used: ``Function.apply`` on tensors and ``torch.autograd.grad`` through its hand backward,
against the reference's forward and autograd's backward, on the same tensors and upstream
gradient, one right after the other in one group (the machine's load drifts). The summary at the
end of a benchmark run (conftest.py) gives the hand/autograd ratio of medians per group. The
default run passes ``--benchmark-disable``: each body runs once, as a smoke test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import handgrad
from handgrad.adapt.functions import function_of
from handgrad.cases import Case, build_inputs, upstream


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "function_case" in metafunc.fixturenames:
        params = [pytest.param((r, dims, dtype), id=f"{r.name}-{dtype}-" +
                               ",".join(f"{k}={v}" for k, v in dims.items()))
                  for r in handgrad.derivations() if function_of(r) is not None
                  for dims in r.bench for dtype in ("float64", "float32")]
        metafunc.parametrize("function_case", params)


@pytest.mark.parametrize("side", ["hand", "autograd"])
def test_function_forward_backward(benchmark, function_case, side):
    record, dims, dtype = function_case
    info = function_of(record)
    case = Case.of(dims, 0, "bench")
    inputs = build_inputs(record, case, dtype)
    tensors = info.tensors(inputs)
    leaves = [tensors[k] for k in record.differentiable]
    with torch.no_grad():
        out, _ = record.forward(**inputs)
    up = torch.from_numpy(np.array(upstream(np.shape(out), case, dtype))).reshape(np.shape(out))
    benchmark.group = f"function {record.name} {dtype} " + ",".join(
        f"{k}={v}" for k, v in dims.items())
    benchmark.extra_info.update(side=side, dtype=dtype, flops=None)

    def joined(outs):
        return torch.cat([o.reshape(-1) for o in outs]).reshape(up.shape) if len(outs) > 1 \
            else outs[0]

    def hand():
        return torch.autograd.grad((joined(info.apply(tensors)) * up).sum(), leaves)

    def autograd():
        result = record.reference(**tensors)
        ref_out = result[0] if isinstance(result, tuple) else result
        return torch.autograd.grad((ref_out * up).sum(), leaves)

    grads = benchmark(hand if side == "hand" else autograd)
    # Both sides must compute the same gradients, or their times mean nothing: the tolerance is
    # float32's (1e-4 relative to each tensor's largest entry), loose for float64, and right
    # for float32 sums of the sizes benchmarked (a few thousand terms).
    check = autograd() if side == "hand" else hand()
    for g, c in zip(grads, check):
        scale = float(c.abs().max())
        np.testing.assert_allclose(g.numpy(), c.numpy(), rtol=1e-4, atol=1e-4 * scale)
