"""Benchmarks: a record's hand code timed against autograd of its reference.

``pairs``   what is timed: the hand and the autograd callable of a record at one size, dtype
            and kind (backward, jvp, hvp, Function)
``runner``  pytest-benchmark's fixture and statistics, the two sides interleaved by rounds, the
            GEMM roof of the run, the JSON of a run
``host``    the machine (CPU, SIMD, BLAS, threads) and its usual GEMM rate (the loaded-machine
            warning)
``table``   the summary: ratio of medians with its spread, GFLOP/s, roof fraction, exponents
``cli``     ``handgrad bench``

May import the records, adapters and cases; ``cli`` also the views and discovery. Imported by
the pytest plugin and the views, never by the checking.
"""

from handgrad.bench.host import cpu_model, machine, machine_lines, simd_level
from handgrad.bench.table import (
    Timing,
    cost_exponent,
    from_json,
    gemm_rates,
    sandbox_lines,
    scaling_lines,
    summary,
    timings,
)

__all__ = ["Timing", "cost_exponent", "cpu_model", "from_json", "gemm_rates", "machine",
           "machine_lines", "sandbox_lines", "scaling_lines", "simd_level", "summary", "timings"]
