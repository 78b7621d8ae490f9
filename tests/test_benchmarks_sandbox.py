"""What bubblewrap costs a submission: its interpreter started (and NumPy imported, the sandbox
script's first act) with and without the sandbox, side by side in one run, against the time of
grading one right submission of the test class (tests/test_grade.py: three records, two cases
each, contained). Each contained round is preceded by an uncontained start, timed apart
(``paired_uncontained``), so that the difference is also measured under the same load. The
summary at the end of a benchmark run prints the differences and their fractions of the
grading time (``handgrad.bench.sandbox_lines``); the default run passes
``--benchmark-disable``, which runs each body once as a smoke test.

    pytest -n 0 tests/test_benchmarks_sandbox.py --benchmark-enable
"""

from __future__ import annotations

import statistics
import textwrap
import time

import pytest

from handgrad.grade import Options, grade_one
from handgrad.grade.grader import prepare
from handgrad.grade.remote import Channel, Limits
from tests.sandboxed import require_bubblewrap
from tests.test_grade import RIGHT, STAFF

GROUP = "sandbox: the test class"
LIMITS = Limits(timeout=30, memory_mb=1024, output_kb=256)


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-class")
    (root / "staff").mkdir()
    (root / "staff" / "records.py").write_text(textwrap.dedent(STAFF))
    (root / "right").mkdir()
    (root / "right" / "layers.py").write_text(RIGHT)
    return root


@pytest.mark.parametrize("contained", [False, True], ids=["uncontained", "contained"])
def test_interpreter_start(benchmark, submission, tmp_path, contained):
    require_bubblewrap()
    work = tmp_path / "work"
    work.mkdir()
    benchmark.group = GROUP
    benchmark.extra_info.update(side=f"{'contained' if contained else 'uncontained'} start",
                                dtype="-")

    def start_and_stop(inside: bool = contained):
        channel = Channel(work, work, LIMITS, inside)
        alive = channel.alive
        channel.stop()
        return alive

    paired: list[float] = []

    def uncontained_first():
        """Before each contained round, an uncontained start, timed: the pair sees the same
        load."""
        began = time.perf_counter()
        assert start_and_stop(False)
        paired.append(time.perf_counter() - began)

    setup = uncontained_first if contained else None
    assert benchmark.pedantic(start_and_stop, setup=setup, rounds=20, warmup_rounds=2)
    if contained and paired:
        benchmark.extra_info["paired_uncontained"] = statistics.median(paired)


def test_grading_one_submission(benchmark, submission):
    require_bubblewrap()
    options = prepare([str(submission / "right")], Options(
        records=(str(submission / "staff"),), cases=2, limits=LIMITS))
    benchmark.group = GROUP
    benchmark.extra_info.update(side="submission", dtype="-")
    graded = benchmark.pedantic(grade_one, (str(submission / "right"), options), rounds=5,
                                warmup_rounds=1)
    assert [r.as_expected for r in graded.reports] == [True, True, True]
