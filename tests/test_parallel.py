"""Many records on several processes: ``handgrad check -j 2`` reports exactly what ``-j 1`` does,
a case that never ends is stopped and reported while the others go on, one folder per
submission gets its own summary row, and ``pytest -n 2`` runs the same tests with the same
outcomes as a serial run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from handgrad import cli

SUBSET = ["mlp-ce-tanh", "mlp-source-dyhat-sign", "meanpool-relu", "rnn-mutant-off"]

RIGHT = '''
import handgrad


def forward(x, W):
    return x @ W, (x, W)


def backward(dout, cache):
    x, W = cache
    return {"x": dout @ W.T, "W": x.T @ dout}


RECORD = handgrad.Derivation(name="linear", forward=forward, backward=backward,
                             reference=lambda x, W: x @ W, inputs="x: N D, W: D K",
                             dims={"N": (1, 3), "D": (1, 3), "K": (1, 3)})
'''

LOOPING = RIGHT.replace('''    x, W = cache
    return''', '''    x, W = cache
    while x.shape[0] == 2:  # a student's loop that never ends, on one case only
        pass
    return''')


def rows_of(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)


def test_two_workers_report_exactly_what_one_process_does(capsys):
    assert cli.main(["check", *SUBSET, "--json"]) == 0
    serial = rows_of(capsys)
    assert cli.main(["check", *SUBSET, "--json", "-j", "2"]) == 0
    assert rows_of(capsys) == serial
    assert {r["derivation"] for r in serial} >= {"mlp-ce-tanh", "mlp-source-dyhat-sign"}


@pytest.fixture
def submissions(tmp_path) -> Path:
    """Three students: one right, one whose backward never returns on one case, one whose
    file does not import."""
    for name, text in (("alice", RIGHT), ("bob", LOOPING), ("carol", "import nonexistent\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "grads.py").write_text(textwrap.dedent(text))
    return tmp_path


@pytest.mark.slow  # waits out a timeout (~10 s); CI runs it with -m slow
def test_a_case_that_never_ends_is_stopped_and_the_others_go_on(submissions, capsys):
    folders = [str(submissions / n) for n in ("alice", "bob", "carol")]
    csv_path, json_path = submissions / "summary.csv", submissions / "summary.json"
    status = cli.main(["check", "--path", *folders, "--cases", "3", "--timeout", "4",
                       "--json", "--summary-csv", str(csv_path), "--summary-json",
                       str(json_path)])
    assert status == 1
    rows = rows_of(capsys)
    timeouts = [r for r in rows if r["kind"] == "timeout"]
    assert len(timeouts) == 1 and "within 4 s" in timeouts[0]["message"]
    assert timeouts[0]["case"].endswith("N=2")
    bob_checked = [r for r in rows if r["kind"] != "timeout" and r["check"] == "autograd"
                   and r["derivation"] == "linear"]
    assert bob_checked, "the other cases of the looping record are still checked"
    table = {row["path"]: row for row in csv.DictReader(csv_path.open())}
    assert table[folders[0]]["as_expected"] == "1" and table[folders[0]]["timeouts"] == "0"
    assert table[folders[1]]["as_expected"] == "0" and table[folders[1]]["timeouts"] == "1"
    assert table[folders[2]]["broken_files"] == "1"
    assert "nonexistent" in table[folders[2]]["problems"]
    assert json.loads(json_path.read_text())[0]["path"] == folders[0]


def _outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        verdict = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                verdict = tag
        out[f"{case.get('classname')}::{case.get('name')}"] = verdict
    return out


def test_pytest_with_two_workers_runs_the_same_tests_with_the_same_outcomes(submissions):
    """Collection is deterministic across workers (xdist refuses to run otherwise) and each
    test has the outcome it has in a serial run, the records' checks included."""
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/test_shapes.py", "--grad-path", str(submissions / "alice"),
            "--grad-path", str(submissions / "carol"), "--grad-cases", "2"]
    env = {**os.environ, "PYTHONPATH": ""}
    root = Path(__file__).resolve().parent.parent
    runs = {}
    for label, extra in (("serial", []), ("xdist", ["-n", "2"])):
        junit = submissions / f"{label}.xml"
        done = subprocess.run([*args, *extra, f"--junitxml={junit}"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stdout[-2000:]  # carol's import error fails
        runs[label] = _outcomes(junit)
    assert runs["serial"] == runs["xdist"]
    assert any("linear[coverage]" in k for k in runs["serial"])
    assert [k for k, v in runs["serial"].items() if v != "passed"] == [
        k for k in runs["serial"] if "grads.py[import]" in k]
