"""``handgrad grade`` on a generated class: right submissions, wrong ones and hostile ones (global
state changed, handgrad/numpy patched, the grader's wire tampered with, records edited,
crashes, a memory hog, an endless loop, an output flood). Every right submission gets full
marks whatever else is in the run; every wrong one loses the points of its wrong records, with
its diagnosis; every hostile one is contained and reported as what it did; and the verdicts of
all the others are identical, byte for byte, to a run without the hostile ones."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from handgrad.grade import Options, grade, load_points
from handgrad.grade import cli as grade_cli
from handgrad.grade import formats as grade_formats
from handgrad.grade.remote import Limits
from tests.sandboxed import require_bubblewrap

STAFF = '''
import torch
import torch.nn.functional as F
from handgrad import adapt

import layers as L

RECORDS = [
    adapt.pair("affine", L.affine_forward, L.affine_backward,
               shapes="x: N D, w: D M, b: M", dims={"N": (2, 3), "D": (2, 3), "M": (2, 3)},
               reference=lambda x, w, b: x @ w + b),
    adapt.loss("softmax", L.softmax_loss, shapes="x: N C, y: N", labels={"y": "C"},
               dims={"N": (2, 3), "C": (2, 3)},
               reference=lambda x, y: F.cross_entropy(x, y.long())),
    adapt.layer("linear", L.Linear, shapes="x: N D", params={"W": "D M", "b": "M"},
                dims={"N": (2, 3), "D": (2, 3), "M": (2, 3)},
                reference=lambda x, W, b: x @ W + b),
]
'''

RIGHT = '''
import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).sum() / n
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


class Linear:
    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T
'''

LOOPS = '''
import numpy as np


def affine_forward(x, w, b):
    out = np.zeros((x.shape[0], w.shape[1]), dtype=x.dtype)
    for i in range(x.shape[0]):
        for j in range(w.shape[1]):
            out[i, j] = sum(x[i, k] * w[k, j] for k in range(x.shape[1])) + b[j]
    return out, {"x": x, "w": w}


def affine_backward(dout, cache):
    x, w = cache["x"], cache["w"]
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(x.shape[0]):
        dx[i] = w @ dout[i]
        dw += np.outer(x[i], dout[i])
    return dx, dw, dout.sum(axis=0)
''' + RIGHT.split("def softmax_loss")[0].split("import numpy as np")[0] + \
    "def softmax_loss" + RIGHT.split("def softmax_loss")[1]

W_DOUBLED = RIGHT.replace("x.T @ dout, dout.sum(axis=0)", "2 * x.T @ dout, dout.sum(axis=0)")
NOT_AVERAGED = RIGHT.replace("return loss, dx / n", "return loss, dx")

HOSTILE = {
    # globals of its own process: nothing reaches the grader or the others; its code is right
    "global-state": RIGHT + '''
import os, sys, random
import torch
torch.set_grad_enabled(False)
torch.set_default_dtype(torch.float64)
torch.set_num_threads(7)
np.seterr(all="raise")
np.random.seed(1)
random.seed(1)
os.chdir("/")
sys.path.insert(0, "/nonexistent")
''',
    # patches handgrad and numpy where it can (its own process): wrong code still fails
    "patches": W_DOUBLED + '''
import numpy, numpy.testing
numpy.allclose = lambda *a, **k: True
numpy.isclose = lambda a, b, *r, **k: numpy.ones(numpy.broadcast(a, b).shape, bool)
numpy.testing.assert_allclose = lambda *a, **k: None
try:
    import handgrad.compare, handgrad.check
    handgrad.compare.compare = None
    handgrad.check.compare = None
except Exception:
    pass
''',
    # rewrites the sandbox so that its answers would run code in the grader when unpickled
    "wire": RIGHT + '''
import __main__, os


class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))


__main__.Sandbox.encode = lambda self, value, depth=0: Payload()
''',
    "crash-at-import": RIGHT + "\nimport os\nos._exit(3)\n",
    "exit-at-import": RIGHT + "\nimport sys\nsys.exit('no thanks')\n",
    "segfault": RIGHT.replace('''def affine_backward(dout, cache):
''', '''def affine_backward(dout, cache):
    import ctypes
    ctypes.string_at(0)
'''),
    "memory-hog": RIGHT.replace('''def affine_forward(x, w, b):
''', '''def affine_forward(x, w, b):
    hog = np.ones(10 ** 10)
'''),
    "endless": RIGHT.replace('''def softmax_loss(x, y):
''', '''def softmax_loss(x, y):
    while True:
        pass
'''),
    "output-flood": RIGHT.replace('''class Linear:
    def forward(self, x):
''', '''class Linear:
    def forward(self, x):
        while True:
            print("x" * 1000)
'''),
}
# what each hostile submission must get: (score, {record: kind} for the records it loses)
EXPECTED = {
    "global-state": (4, {}),
    "patches": (2, {"affine": "factor"}),
    "wire": (0, {"affine": "tampered", "softmax": "tampered", "linear": "tampered"}),
    "crash-at-import": (0, {"affine": "crash", "softmax": "crash", "linear": "crash"}),
    "exit-at-import": (0, {"affine": "exception", "softmax": "exception",
                           "linear": "exception"}),
    "segfault": (2, {"affine": "crash"}),
    "memory-hog": (2, {"affine": "memory"}),
    "endless": (3, {"softmax": "timeout"}),
    "output-flood": (3, {"linear": "output"}),
}
POINTS = {"affine": 2, "softmax": 1, "linear": 1}


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    require_bubblewrap()


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("class")
    (root / "staff").mkdir()
    (root / "staff" / "records.py").write_text(textwrap.dedent(STAFF))
    (root / "points.json").write_text(json.dumps(POINTS))
    students = {"right-1": RIGHT, "right-2-loops": LOOPS, "wrong-w": W_DOUBLED,
                "wrong-average": NOT_AVERAGED}
    students.update({f"hostile-{k}": v.replace("{marker}", str(root / "pwned"))
                     for k, v in HOSTILE.items()})
    for name, text in students.items():
        (root / "subs" / name).mkdir(parents=True)
        (root / "subs" / name / "layers.py").write_text(text)
    # an edited copy of the records in the folder of a wrong submission: never loaded
    (root / "subs" / "wrong-w" / "records.py").write_text(
        textwrap.dedent(STAFF).replace('"affine", L.affine_forward',
                                       '"affine", L.affine_forward, expect="reject"'))
    return root


def folders(root: Path, hostile: bool) -> list[str]:
    return [str(p) for p in sorted((root / "subs").iterdir())
            if hostile or not p.name.startswith("hostile-")]


OPTIONS = dict(cases=2, limits=Limits(timeout=3, memory_mb=1024, output_kb=256))


@pytest.fixture(scope="module")
def graded_run(klass, tmp_path_factory):
    """The whole class through the command line, with every format written."""
    out = tmp_path_factory.mktemp("out")
    argv = ["--records", str(klass / "staff"), *folders(klass, hostile=True),
            "--points", str(klass / "points.json"), "--cases", "2", "--timeout", "3",
            "--memory-mb", "1024", "--output-kb", "256", "-j", "2", "--json",
            "--summary-csv", str(out / "summary.csv"), "--scores-csv", str(out / "scores.csv"),
            "--gradescope", str(out / "gradescope"), "--junit", str(out / "junit.xml"),
            "--html", str(out / "site")]
    # run here, once, so that every test of this module sees the run whichever worker runs it
    printed, before = io.StringIO(), sys.modules.get("layers")
    with contextlib.redirect_stdout(printed):
        status = grade_cli.main(argv)
    # the grader leaves no proxy of a submission's module behind, and puts back what was there
    assert sys.modules.get("layers") is before
    return status, printed.getvalue(), out


def test_every_submission_gets_what_it_earned_and_hostile_ones_are_contained(
        klass, graded_run):
    status, printed, out = graded_run
    assert status == 0
    rows = json.loads(printed)
    scores = {row["student"]: row for row in csv.DictReader((out / "scores.csv").open())}
    assert float(scores["right-1"]["score"]) == float(scores["right-1"]["max_score"]) == 4
    assert float(scores["right-2-loops"]["score"]) == 4
    assert float(scores["wrong-w"]["score"]) == 2
    assert scores["wrong-w"]["kinds"] == "affine:factor"  # its edited records.py is ignored
    assert float(scores["wrong-average"]["score"]) == 3
    assert scores["wrong-average"]["kinds"] == "softmax:factor"
    for name, (score, lost) in EXPECTED.items():
        row = scores[f"hostile-{name}"]
        got = dict(k.split(":") for k in row["kinds"].split(";") if k)
        assert (float(row["score"]), got) == (score, lost), name
    assert not (klass / "pwned").exists(), "an answer of the submission ran code in the grader"
    # the diagnosis of a wrong record travels with it
    wrong = json.loads((out / "gradescope" / "wrong-w" / "results.json").read_text())
    affine = next(t for t in wrong["tests"] if t["name"] == "affine")
    assert (affine["score"], affine["max_score"]) == (0, 2)
    assert "first wrong: dL/dw" in affine["output"] and "factor" in affine["output"]
    assert wrong["score"] == 2
    # the others' rows, byte for byte, against a run of the class without the hostile ones
    clean = grade(folders(klass, hostile=False),
                  Options(records=(str(klass / "staff"),), **OPTIONS), jobs=1)
    for g in clean:
        assert json.dumps(rows[g.student]) == json.dumps(grade_formats.verdicts(g)), g.student


def test_the_formats(klass, graded_run):
    _, _, out = graded_run
    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot()}
    assert suites["right-1"].get("failures") == "0" and suites["right-1"].get("errors") == "0"
    case = suites["wrong-w"].find("testcase[@name='affine']/failure")
    assert case is not None and "factor" in case.get("message")
    assert suites["hostile-segfault"].find("testcase[@name='affine']/error") is not None
    summary = {Path(r["path"]).name: r for r in csv.DictReader((out / "summary.csv").open())}
    assert summary["right-1"]["as_expected"] == "3"
    assert summary["hostile-endless"]["timeouts"] == "1"
    index = (out / "site" / "index.html").read_text()
    assert 'href="wrong-w/index.html"' in index
    student = (out / "site" / "wrong-w" / "index.html").read_text()
    assert 'href="affine.html"' in student or "affine" in student
    page = next((out / "site" / "wrong-w").glob("affine*.html"))
    assert "factor" in page.read_text()
    assert load_points(str(klass / "points.json"))("affine") == 2


@pytest.mark.slow
def test_a_bigger_class_with_every_hostile_submission_twice(klass, tmp_path):
    """Thirty submissions, four cases each: the same guarantees at a larger scale."""
    subs = tmp_path / "subs"
    for i, source in enumerate(sorted((klass / "subs").iterdir()) * 2 + sorted(
            p for p in (klass / "subs").iterdir() if not p.name.startswith("hostile-")) * 2):
        (subs / f"{i:02d}-{source.name}").mkdir(parents=True)
        (subs / f"{i:02d}-{source.name}" / "layers.py").write_text(
            (source / "layers.py").read_text())
    options = Options(records=(str(klass / "staff"),), cases=4,
                      limits=Limits(timeout=3, memory_mb=1024, output_kb=256))
    everyone = grade([str(p) for p in sorted(subs.iterdir())], options, jobs=2)
    calm = [str(p) for p in sorted(subs.iterdir()) if "hostile-" not in p.name]
    alone = {g.student: grade_formats.verdicts(g) for g in grade(calm, options, jobs=2)}
    points = load_points(str(klass / "points.json"))
    for g in everyone:
        name = g.student.split("-", 1)[1]
        earned, possible = g.score(points)
        if name.startswith("right"):
            assert earned == possible == 4, g.student
        elif name.startswith("hostile-"):
            score, lost = EXPECTED[name.removeprefix("hostile-")]
            assert (earned, {r.derivation: r.kind for r in g.reports
                             if not r.as_expected}) == (score, lost), g.student
        if "hostile-" not in g.student:
            assert json.dumps(grade_formats.verdicts(g)) == json.dumps(alone[g.student])


def test_a_submission_that_uses_up_its_time_budget_is_stopped(klass, tmp_path):
    """Each call slow but under the per-call limit: the per-submission budget stops it, and
    every record it did not finish reads ERROR [timeout] naming the budget."""
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "layers.py").write_text(RIGHT.replace('''def affine_forward(x, w, b):
''', '''def affine_forward(x, w, b):
    import time
    time.sleep(0.3)
'''))
    options = Options(records=(str(klass / "staff"),), cases=2,
                      limits=Limits(timeout=3, budget=1.5))
    (graded,) = grade([str(tmp_path / "slow")], options)
    affine = graded.reports[0]
    assert affine.kind == "timeout" and "budget of 1.5 s" in affine.results[0].message
    assert all(r.kind == "timeout" for r in graded.reports)
