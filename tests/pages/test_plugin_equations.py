"""The pytest plugin gives a page's every equation a test item of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RECORD = '''
from tests.corpus.pages import two_layer

RECORDS = [two_layer.record("two-layer-right", "two_layer.md"),
           two_layer.record("two-layer-wrong", "two_layer_wrong.md")]
'''


def test_one_item_per_equation(tmp_path):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "grads").mkdir()
    (tmp_path / "grads" / "student.py").write_text(RECORD)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "--grad-path", str(tmp_path / "grads"), "--grad-cases", "2", "-k", "eq-",
         "--rootdir", str(tmp_path), str(tmp_path / "grads")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    out = done.stdout
    assert "18 passed" in out and "4 failed" in out, out[-3000:]
    for tag in ("6", "7", "9", "10"):
        assert f"two-layer-wrong[eq-{tag}]" in out
    assert "(6)" in out and "is wrong on the page [sign]" in out
