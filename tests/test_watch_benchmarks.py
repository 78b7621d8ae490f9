"""Save to verdict with ``handgrad check --watch``: the time from writing a record file to the
verdict of its records, with the real file watcher (watchfiles) and the warm process of the
watch, on copies of the catalogue's MLP and RNN records. A benchmark, not a timed test: run it
with ``pytest -n 0 tests/test_watch_benchmarks.py --benchmark-enable``; the default run passes
``--benchmark-disable`` and saves once, as a smoke test that the verdict comes."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from handgrad import parallel
from handgrad.watch import Watcher, run

REPO = Path(__file__).resolve().parents[1]
VERDICT_WAIT = 120.0
"""Seconds to wait for a verdict before calling the watch stuck (a loaded 2-core VM can take a
few seconds per check; a lost change never comes at all)."""


@pytest.fixture
def catalogue_copy(tmp_path, monkeypatch):
    """derivations/ and reference/ copied under a pyproject of their own; this process's
    imports of the real ones are put back afterwards."""
    for folder in ("derivations", "reference"):
        shutil.copytree(REPO / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.handgrad]\npaths = ["derivations"]\nreference_dir = "reference"\n')
    monkeypatch.chdir(tmp_path)
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("derivations",
                                                                         "reference")}
    path, threads = list(sys.path), torch.get_num_threads()
    torch.set_num_threads(1)  # as handgrad check --watch does
    yield tmp_path
    torch.set_num_threads(threads)
    for name in [k for k in sys.modules if k.split(".")[0] in ("derivations", "reference")]:
        del sys.modules[name]
    sys.modules.update(saved)
    sys.path[:] = path


@pytest.mark.parametrize(("stem", "name"), [("mlp", "mlp-ce-tanh"), ("rnn", "rnn-tanh-ce")])
def test_save_to_verdict(benchmark, catalogue_copy, stem, name):
    verdicts: list = []
    arrived = threading.Event()

    def note(batch) -> None:
        verdicts.append(batch)
        arrived.set()

    watcher = Watcher(None, [name], parallel.Options(seed=0, cases=4), note)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(watcher, stop), daemon=True)
    thread.start()
    assert arrived.wait(VERDICT_WAIT), "the first round never finished"
    time.sleep(0.3)  # the first round is done; let watchfiles start watching
    file = catalogue_copy / "derivations" / f"{stem}.py"
    source = file.read_text()
    edits = iter(range(10**6))

    def save_and_wait():
        arrived.clear()
        file.write_text(source + f"\n# edit {next(edits)}\n")
        if not arrived.wait(VERDICT_WAIT):
            raise AssertionError(f"no verdict {VERDICT_WAIT} s after saving {file}")

    benchmark.group = "watch: save to verdict"
    benchmark.extra_info.update(record=name, cases=4)
    try:
        benchmark.pedantic(save_and_wait, rounds=8, warmup_rounds=1)
    finally:
        stop.set()
        thread.join(timeout=30)
    last = verdicts[-1]
    assert last.names == [name] and last.reports[0].as_expected
