"""No false alarms: at least 1,000 seeded cases over every right derivation and variant, float64
and float32, every oracle. Slow: run with ``pytest -m slow`` (``--grad-seed S`` draws another
1,000)."""

from __future__ import annotations

import math

import pytest

import handgrad
from handgrad.cases import sample_cases
from handgrad.check import check_case

SWEEP_SEED = 20261127
SWEEP_CASES = 1000


@pytest.mark.slow
def test_no_false_alarm(record, grad_seed):
    if record.expect != "pass":
        pytest.skip("a transcribed error: rejections are tested elsewhere")
    right = [r for r in handgrad.derivations() if r.expect == "pass"]
    per_record = math.ceil(SWEEP_CASES / len(right))
    failures = []
    for case in sample_cases(record, SWEEP_SEED + grad_seed, per_record):
        failures += [r for r in check_case(record, case) if not r.passed]
    assert not failures, "\n".join(
        f"{r.case} s={r.data_seed} {r.dtype} {r.check} {r.tensor}: {r.kind} {r.message} "
        f"(max rel {r.max_rel:.2e}); reproduce: handgrad check {r.derivation} --dims {r.case} "
        f"--data-seed {r.data_seed}" for r in failures)
