"""RTRL against BPTT: the same gradient at growing hidden sizes.

The hand jvp and hvp of every record with ``bench`` dims are timed against ``torch.func.jvp`` and
double backward by handgrad's plugin (``NAME[bench-jvp-...]`` items, ``handgrad/bench/pairs.py``)
and by ``handgrad bench``. Here each method is tagged as a scaling ``series``, and the summary
(``handgrad/bench/table.py``) fits its cost exponent in the hidden size. The default run passes
``--benchmark-disable``, which runs each body once as a smoke test.
"""

from __future__ import annotations

import pytest

from derivations import rnn, rnn_forward
from handgrad.cases import Case, build_inputs, upstream

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
