"""handgrad's pytest plugin in every mode people run pytest in, on a tiny project outside this
repository: ``--benchmark-only`` (which skips every item that is not a benchmark),
``-k``, ``-m``, ``--lf``, ``--sw``, ``-x``, ``--collect-only``, ``-n 2``, and skip and xfail
marks on a record file. And the plugin costs nothing where there are no records: it does not
import the engine (torch) in a project that has none."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

RECORDS = '''
import handgrad


def forward(x, W):
    return x @ W, (x, W)


def backward(dout, cache):
    x, W = cache
    return {"x": dout @ W.T, "W": x.T @ dout}


def backward_w_doubled(dout, cache):
    x, W = cache
    return {"x": dout @ W.T, "W": 2 * x.T @ dout}


SHAPES = dict(reference=lambda x, W: x @ W, inputs="x: N D, W: D K",
              dims={"N": (2, 3), "D": (2, 3), "K": (2, 3)})
RIGHT = handgrad.Derivation(name="linear", forward=forward, backward=backward, **SHAPES)
WRONG = handgrad.Derivation(name="linear-w-doubled", forward=forward,
                            backward=backward_w_doubled, **SHAPES)
'''

BENCH = '''
def test_a_benchmark(benchmark):
    benchmark(sum, [1, 2, 3])


def test_plain():
    assert True
'''

PYPROJECT = '''
[project]
name = "homework"
version = "0"

[tool.handgrad]
paths = ["grads"]

[tool.pytest.ini_options]
markers = ["slow: a slow record"]
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin-modes")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "grads").mkdir()
    (root / "grads" / "records.py").write_text(textwrap.dedent(RECORDS))
    (root / "grads" / "xfailed.py").write_text(
        "import pytest\n" + textwrap.dedent(RECORDS).replace('name="linear', 'name="xf-linear')
        + '\npytestmark = [pytest.mark.xfail(reason="known wrong"), pytest.mark.slow]\n')
    (root / "grads" / "skipped.py").write_text(
        "import pytest\n" + textwrap.dedent(RECORDS).replace('name="linear', 'name="sk-linear')
        + '\npytestmark = {"sk-linear": pytest.mark.skip(reason="not yet"),\n'
        '              "sk-linear-w-doubled": [pytest.mark.skip(reason="not yet")]}\n')
    (root / "test_bench.py").write_text(textwrap.dedent(BENCH))
    return root


def pytest_run(project: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    junit = project / "junit.xml"
    junit.unlink(missing_ok=True)
    # A run of its own: not a worker of the xdist run this test may be part of (pytest-benchmark
    # reads PYTEST_XDIST_WORKER and would disable itself, refusing --benchmark-only).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = ""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--grad-cases", "1",
                           f"--junitxml={junit}", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "INTERNALERROR" not in done.stdout + done.stderr, done.stdout[-3000:]
    outcomes = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            verdict = "passed"
            for tag in ("failure", "error", "skipped"):
                found = case.find(tag)
                if found is not None:
                    verdict = "xfailed" if tag == "skipped" and found.get("type") == \
                        "pytest.xfail" else tag
            outcomes[case.get("name")] = verdict
    return done, outcomes


def test_benchmark_only_skips_the_records_without_an_internal_error(project):
    done, outcomes = pytest_run(project, "--benchmark-only", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout[-3000:]
    assert outcomes["test_a_benchmark"] == "passed"
    assert outcomes["linear[distinct0]"] == outcomes["linear[coverage]"] == "skipped"


def test_skip_and_xfail_marks_on_a_record_file_act_on_its_items(project):
    """``pytestmark`` of a file applies to its records' items; a dict applies per record."""
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider")
    assert done.returncode == 1  # linear-w-doubled is wrong and expected to pass
    assert outcomes["linear[distinct0]"] == "passed"
    assert outcomes["linear-w-doubled[distinct0]"] == "failure"
    assert outcomes["xf-linear-w-doubled[distinct0]"] == "xfailed"
    assert outcomes["sk-linear[distinct0]"] == "skipped"
    assert outcomes["sk-linear-w-doubled[distinct0]"] == "skipped"


@pytest.mark.slow  # a pytest run of its own (~5 s); CI runs it with -m slow
def test_k_and_m_select_record_items(project):
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider", "-k", "linear and not w-doubled",
                                "-m", "not slow")
    assert done.returncode == 0, done.stdout[-3000:]
    assert set(outcomes) == {"linear[distinct0]", "linear[coverage]", "sk-linear[distinct0]",
                             "sk-linear[coverage]"}
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider", "-m", "slow")
    assert {k.split("[")[0] for k in outcomes} == {"xf-linear", "xf-linear-w-doubled"}


@pytest.mark.slow  # a pytest run of its own (~5 s); CI runs it with -m slow
def test_x_stops_at_the_first_failing_record(project):
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider", "-x", "grads/records.py")
    assert done.returncode == 1
    assert list(outcomes.values()).count("failure") == 1
    assert len(outcomes) < 4


def test_collect_only_lists_the_items_and_runs_none(project):
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider", "--collect-only")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "grads/records.py::linear[distinct0]" in done.stdout
    assert "grads/records.py::linear-w-doubled[coverage]" in done.stdout


@pytest.mark.slow  # a pytest run of its own (~5 s); CI runs it with -m slow
def test_last_failed_and_stepwise_rerun_the_failing_record(project):
    cache = ["-o", f"cache_dir={project / '.cache'}"]
    first, _ = pytest_run(project, *cache)
    assert first.returncode == 1
    done, outcomes = pytest_run(project, *cache, "--lf")
    assert outcomes == {"linear-w-doubled[distinct0]": "failure"}
    done, outcomes = pytest_run(project, *cache, "--sw", "grads/records.py")
    assert done.returncode in (1, 2)  # pytest 9 exits 2 (interrupted) where --sw stops
    assert list(outcomes.values()).count("failure") == 1


@pytest.mark.slow  # a pytest run of its own (~5 s); CI runs it with -m slow
def test_two_xdist_workers_run_the_records(project):
    done, outcomes = pytest_run(project, "-p", "no:cacheprovider", "-n", "2",
                                "grads/records.py")
    assert done.returncode == 1
    assert outcomes["linear[distinct0]"] == "passed"
    assert outcomes["linear-w-doubled[distinct0]"] == "failure"


def test_the_plugin_does_not_import_the_engine_where_there_are_no_records(tmp_path):
    (tmp_path / "test_one.py").write_text(textwrap.dedent('''
        import sys


        def test_engine_not_loaded():
            assert "torch" not in sys.modules
            assert "handgrad.check" not in sys.modules
    '''))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:benchmark", "-p", "no:xdist", "test_one.py"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
