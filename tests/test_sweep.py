"""No false alarms: at least 5,000 seeded cases over every right record (this repository's
derivations, the course-style corpus, the kinked layers, the records with hand JVPs and HVPs of
tests/linear_records.py), float64 and float32, every oracle (the jvp and hvp checks included);
and every right record of derivations/ and of the corpus (its adapter options included: a lazy
counting cell stepped through time, weights drawn in a constructor before a dropout mask, an
optimizer step that changes a dtype) and the wide softmax of tests/test_resolution.py at 30
seeds each, the minimal case of each seed (where the extreme draws of small sizes sit).
Slow: run with ``pytest -m slow`` (``--grad-seed S`` draws others; ``-n 2`` halves the wait)."""

from __future__ import annotations

import math

import pytest

import handgrad
from handgrad.cases import sample_cases
from handgrad.check import check_case
from handgrad.report import reproduce_command
from tests import corpus, kinky, linear_records, test_resolution

SWEEP_SEED = 20261127
SWEEP_CASES = 5000


def right_records() -> list[handgrad.Derivation]:
    return ([r for r in handgrad.derivations() if r.expect == "pass"] + list(corpus.RIGHT)
            + list(kinky.KINKY) + list(linear_records.RIGHT))


RIGHT = right_records()
PER_RECORD = math.ceil(SWEEP_CASES / len(RIGHT))


@pytest.mark.slow
@pytest.mark.parametrize("right", RIGHT, ids=lambda r: r.name)
def test_no_false_alarm(right, grad_seed):
    failures = []
    for case in sample_cases(right, SWEEP_SEED + grad_seed, PER_RECORD):
        failures += [r for r in check_case(right, case) if not r.passed]
    assert not failures, "\n".join(
        f"{r.case} s={r.data_seed} {r.dtype} {r.check} {r.tensor}: {r.kind} {r.message} "
        f"(max rel {r.max_rel:.2e}); reproduce: "
        f"{reproduce_command(r.derivation, r.case, r.data_seed)}" for r in failures)


SEEDS = 30
# One case per seed: the minimal one (lowest dims), whose few entries put extreme values (a
# label on the largest logit, every unit of a row dead) in reach of 30 draws; the distinct and
# paper cases are the 5,000-case sweep's.
WIDE = ([r for r in handgrad.derivations() if r.expect == "pass"] + list(corpus.RIGHT)
        + [test_resolution.RIGHT])


@pytest.mark.slow
@pytest.mark.parametrize("right", WIDE, ids=lambda r: r.name)
def test_no_false_alarm_at_30_seeds(right, grad_seed):
    failures = []
    for s in range(SEEDS):
        case = sample_cases(right, SWEEP_SEED + 7919 * (s + 1) + grad_seed, 2)[0]
        failures += [r for r in check_case(right, case) if not r.passed]
    assert not failures, "\n".join(
        f"{r.case} s={r.data_seed} {r.dtype} {r.check} {r.tensor}: {r.kind} {r.message} "
        f"(max rel {r.max_rel:.2e}); reproduce: "
        f"{reproduce_command(r.derivation, r.case, r.data_seed)}" for r in failures)
