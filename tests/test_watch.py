"""``handgrad check --watch`` driven in-process (handgrad/watch.py's Watcher, the part that
decides what to re-check and re-imports it), on a fresh project outside this repository: an
edit gives the new verdict, a syntax error is one line, the fix gives the verdict again; an edit
to a file no record depends on re-checks nothing. The real file watcher (watchfiles) is driven
by tests/test_fresh_project.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from handgrad import parallel
from handgrad.watch import Watcher
from tests import fresh_project


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = fresh_project.make(tmp_path / "my-kernels")
    monkeypatch.chdir(root)
    return root


def watcher(names=(), seen=None) -> Watcher:
    seen = [] if seen is None else seen
    return Watcher(None, list(names), parallel.Options(seed=0, cases=2), seen.append)


def test_first_round_checks_every_record(project):
    batches = []
    batch = watcher(seen=batches).first()
    assert sorted(batch.names) == ["dense-relu", "scale-columns"]
    assert all(r.as_expected for r in batch.reports) and batches == [batch]


def test_an_edit_is_rechecked_with_its_new_verdict(project):
    w = watcher()
    w.first()
    dense = project / "grads" / "dense.py"
    dense.write_text(dense.read_text().replace('"b": da.sum(axis=0)', '"b": 2 * da.sum(axis=0)'))
    batch = w.check_changed([dense])
    assert batch.names == ["dense-relu"]  # scale.py did not change
    assert not batch.reports[0].passed and batch.reports[0].failures[0].tensor == "b"


def test_a_syntax_error_is_one_line_and_the_fix_is_checked_again(project):
    w = watcher()
    w.first()
    dense = project / "grads" / "dense.py"
    good = dense.read_text()
    dense.write_text(good.replace("def dense_backward(dy, cache):",
                                  "def dense_backward(dy, cache:"))
    broken = w.check_changed([dense])
    assert broken.reports == [] and len(broken.broken) == 1
    assert "SyntaxError" in broken.broken[0].message
    assert "\n" not in " ".join(broken.broken[0].message.split())
    dense.write_text(good)
    fixed = w.check_changed([dense])
    assert fixed.names == ["dense-relu"] and fixed.reports[0].passed


def test_names_narrow_the_watch_and_unrelated_files_recheck_nothing(project):
    w = watcher(names=["scale"])
    assert w.first().names == ["scale-columns"]
    notes = project / "grads" / "notes.txt"
    notes.write_text("not a record")
    assert w.check_changed([notes]) is None
    dense = project / "grads" / "dense.py"
    dense.write_text(dense.read_text() + "\n# edited\n")
    assert w.check_changed([dense]) is None  # holds no chosen record


def test_a_helper_module_edit_rechecks_the_records_that_import_it(project):
    grads = project / "grads"
    (grads / "helpers.py").write_text("def relu_mask(a):\n    return a > 0\n")
    dense = grads / "dense.py"
    imported = "import numpy as np\nfrom helpers import relu_mask\n"
    dense.write_text(dense.read_text().replace("import numpy as np\n", imported)
                     .replace("da = dy * (a > 0)", "da = dy * relu_mask(a)"))
    w = watcher()
    assert all(r.passed for r in w.first().reports)
    (grads / "helpers.py").write_text("def relu_mask(a):\n    return a >= -1e9\n")
    batch = w.check_changed([grads / "helpers.py"])
    assert "dense-relu" in batch.names
    dense_report = next(r for r in batch.reports if r.derivation == "dense-relu")
    assert not dense_report.passed  # the fresh helper, not the one imported first
