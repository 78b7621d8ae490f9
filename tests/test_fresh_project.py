"""The walk-through of a new user, in a fresh project outside this repository
(tests/fresh_project.py): ``handgrad bench`` and ``pytest --benchmark-enable -n 0`` time the
user's own record against autograd with the machine named, the record without ``bench`` dims is
named as not benchmarked, ``--json`` round-trips through ``pytest-benchmark compare``, and
``handgrad check --watch`` re-checks an edited record. Every command runs as the user would run
it, a subprocess in the project's folder; the timings themselves are never asserted (a loaded
machine changes them), only that they were taken and reported."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests import fresh_project

QUICK = ["--benchmark-max-time=0.02", "--benchmark-min-rounds=3"]
"""A few rounds only: these tests check what is reported, not how fast anything is."""


@pytest.fixture
def project(tmp_path) -> Path:
    return fresh_project.make(tmp_path / "my-kernels")


def run(project: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(list(command), cwd=project, env=fresh_project.environment(project),
                          capture_output=True, text=True, timeout=timeout)
    return done


def test_bench_times_the_users_record_and_round_trips_through_compare(project):
    done = run(project, "handgrad", "bench", "--no-roof", "--dtype", "float64", "--json",
               "run.json", "--html", "site", *QUICK)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and lines[1].startswith("numpy BLAS: ")
    assert any(line.startswith("not benchmarked") and "scale-columns" in line for line in lines)
    row = next(line for line in lines if line.startswith("dense-relu float64 N=256,D=512,M=256"))
    hand_ms, auto_ms, ratio = (float(v) for v in row.split()[3:6])
    # The ratio is printed to two decimals and the medians to three (in ms): half a unit of the
    # ratio's last place, plus what the medians' rounding moves it by.
    assert ratio == pytest.approx(hand_ms / auto_ms, abs=0.005 + 0.0005 * (1 + ratio) / auto_ms)
    data = json.loads((project / "run.json").read_text())
    sides = {b["extra_info"]["side"]: b for b in data["benchmarks"]}
    assert set(sides) == {"hand", "autograd"} and data["machine_info"]["handgrad"]["cpu"]
    assert all(b["stats"]["rounds"] >= 3 for b in sides.values())
    page = (project / "site" / "bench.html").read_text()
    assert "<td>dense-relu float64 N=256,D=512,M=256</td>" in page and "machine: " in page
    assert page.count('<img class="plot"') == 1
    compared = run(project, "pytest-benchmark", "compare", "run.json", "--group-by=group")
    assert compared.returncode == 0, compared.stderr
    assert "dense-relu[backward-float64-N=256,D=512,M=256-hand]" in compared.stdout
    assert "dense-relu[backward-float64-N=256,D=512,M=256-autograd]" in compared.stdout


@pytest.mark.slow
def test_pytest_benchmark_enable_times_the_users_record(project):
    done = run(project, "pytest", "--benchmark-enable", "-n", "0", "-p", "no:cacheprovider",
               "--benchmark-json=pytest-run.json", *QUICK)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "hand / autograd (median times, same run)" in out and "machine: " in out
    assert "GEMM rate (the roof)" in out
    assert any(line.startswith("dense-relu float32 N=256,D=512,M=256") for line in
               out.splitlines())
    compared = run(project, "pytest-benchmark", "compare", "pytest-run.json")
    assert compared.returncode == 0 and "dense-relu[backward-float32" in compared.stdout


@pytest.mark.slow
def test_pytest_under_xdist_says_benchmarks_need_n_0(project):
    done = run(project, "pytest", "--benchmark-enable", "-n", "2", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "benchmarks DID NOT RUN" in done.stdout and "-n 0" in done.stdout


@pytest.mark.slow
def test_scale_fits_exponents_and_draws_them(project):
    done = run(project, "handgrad", "bench", "dense-relu", "--scale", "N=64:512", "--no-roof",
               "--html", "site", *QUICK)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dense-relu hand (N, float64): exponent" in done.stdout
    assert "dense-relu autograd (N, float64): exponent" in done.stdout
    page = (project / "site" / "bench.html").read_text()
    assert "<h2>Scaling</h2>" in page and page.count('<img class="plot"') == 2
    assert "http" not in page.replace("http://www.w3.org", "")  # nothing fetched


def _lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue, wanted, seen: list[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if wanted(line):
            return line
    raise AssertionError("the watch never printed the line wanted; it printed:\n"
                         + "\n".join(seen))


@pytest.mark.slow
def test_watch_rechecks_an_edited_record(project):
    dense = project / "grads" / "dense.py"
    good = dense.read_text()
    process = subprocess.Popen(["handgrad", "check", "--watch"], cwd=project,
                               env=fresh_project.environment(project), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        lines = _lines(process)
        _until(lines, lambda s: "2/2 derivations as expected" in s, seen)
        time.sleep(0.5)  # the watcher starts once the first round is printed
        dense.write_text(good.replace('"b": da.sum(axis=0)', '"b": 2 * da.sum(axis=0)'))
        failed = _until(lines, lambda s: s.startswith("dense-relu"), seen)
        assert "FAIL" in failed
        dense.write_text(good.replace("def dense_backward(dy, cache):",
                                      "def dense_backward(dy, cache:"))
        error = _until(lines, lambda s: s.startswith("error:"), seen)
        assert "SyntaxError" in error and "dense.py" in error
        dense.write_text(good)
        fixed = _until(lines, lambda s: s.startswith("dense-relu"), seen)
        assert fixed.split()[-1] == "pass" and process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
