"""``handgrad grade`` contains each submission in bubblewrap: a hostile class (tests/hostile.py)
tries, at import, to rewrite its peers, edit the staff's records, append to the installed
handgrad, reach the network, leave a daemon behind, read the staff's and the peers' files (also
through /proc and symlinks), signal and ptrace the grader, write to the grader's /tmp and home,
and fork many processes. Each attempt must have run (it printed what it got), changed nothing
outside its own copy (judged from outside), and left every honest row as it is without the
hostile submissions, at -j 1 and -j 2.

Also: a staff file that does not load stops the run; a staff file changed during the run is an
incident of the run in every format; without bubblewrap the run stops and says what to do; with
``--uncontained`` every format says so."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import handgrad
from handgrad.grade import Options, bubblewrap, grade
from handgrad.grade import cli as grade_cli
from handgrad.grade import formats as grade_formats
from handgrad.grade.remote import Limits
from tests import hostile
from tests.sandboxed import require_bubblewrap
from tests.test_grade import NOT_AVERAGED, RIGHT, STAFF, W_DOUBLED

SECRET = "STAFF-SECRET-3f1c"  # in the staff's records: no submission may print it
PEER_SECRET = "PEER-SECRET-8d2e"  # in an honest submission
ENV_SECRET = "GRADER-ENV-SECRET-71aa"  # in the grader's environment
LIMITS = Limits(timeout=10, memory_mb=1024, output_kb=256)


class Listener:
    """A TCP listener on 127.0.0.1 that keeps whatever reaches it."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(b"connected:" + conn.recv(4096))
                except OSError:
                    self.received.append(b"connected")

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()
            and "__pycache__" not in p.parts}


def tagged_processes(tag: str) -> list[int]:
    """Processes named by a hostile snippet (``prctl(PR_SET_NAME)``) still alive."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if tag in comm.read_text():
                found.append(int(comm.parent.name))
        except (OSError, ValueError):
            continue
    return found


def kill_survivors(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def hostile_class(tmp_path, monkeypatch):
    """A class of honest submissions and hostile ones; ``make(layout)`` writes it, where layout
    maps a hostile submission's name to its attempts."""
    require_bubblewrap()
    monkeypatch.setenv("HANDGRAD_TEST_SECRET", ENV_SECRET)
    tag = uuid.uuid4().hex[:8]
    listener = Listener()
    home = tmp_path / "home"  # the grader's home, as far as the snippets know
    home.mkdir()
    staff = tmp_path / "staff"
    staff.mkdir()
    (staff / "records.py").write_text(f"# {SECRET}\n" + textwrap.dedent(STAFF))
    subs = tmp_path / "subs"
    honest = {"right-1": RIGHT + f"\n# {PEER_SECRET}\n", "right-2": RIGHT,
              "wrong-w": W_DOUBLED, "wrong-average": NOT_AVERAGED}
    for name, text in honest.items():
        (subs / name).mkdir(parents=True)
        (subs / name / "layers.py").write_text(text)
    values = {"PEERDIR": str(subs / "right-1"), "STAFF": str(staff / "records.py"),
              "PORT": str(listener.port), "TAG": tag, "GRADER": str(os.getpid()),
              "LATE": str(tmp_path / "late"), "HOME": str(home)}

    def make(layout: dict[str, list[str]]) -> dict:
        for name, attempts in layout.items():
            folder = subs / f"hostile-{name}"
            folder.mkdir()
            (folder / "layers.py").write_text(hostile.source(RIGHT, attempts, values))
            (folder / "escape-staff").symlink_to(staff)
            (folder / "escape-root").symlink_to("/")
        return {"subs": subs, "staff": staff, "tag": tag, "listener": listener,
                "home": home, "tmp_path": tmp_path}

    yield make
    listener.close()
    kill_survivors(tagged_processes(tag))
    Path(f"/tmp/hg-{tag}").unlink(missing_ok=True)


def installation_digest() -> dict[str, str]:
    return tree_digest(Path(handgrad.__file__).resolve().parent)


def graded_everyone(klass, jobs: int):
    subs = klass["subs"]
    folders = [str(p) for p in sorted(subs.iterdir())]
    before = {"subs": tree_digest(subs), "staff": tree_digest(klass["staff"]),
              "installation": installation_digest()}
    options = Options(records=(str(klass["staff"]),), cases=2, limits=LIMITS)
    everyone = grade(folders, options, jobs=jobs)
    return everyone, before


def assert_contained(klass, everyone, before, attempts: list[str]) -> None:
    """Every hostile attempt ran and changed nothing outside its copy; nothing of it lives."""
    tag = klass["tag"]
    time.sleep(0.5)  # the kernel's teardown of the last namespace
    survivors = tagged_processes(tag)
    kill_survivors(survivors)
    assert not survivors, f"processes of a submission outlived the grade: {survivors}"
    assert tree_digest(klass["subs"]) == before["subs"], "a submission's folder changed"
    assert tree_digest(klass["staff"]) == before["staff"], "the staff's files changed"
    assert installation_digest() == before["installation"], "the installed handgrad changed"
    assert klass["listener"].received == [], "a submission reached the network"
    assert not Path(f"/tmp/hg-{tag}").exists(), "a submission wrote to the grader's /tmp"
    assert list(klass["home"].iterdir()) == [], "a submission wrote to the grader's home"
    assert not (klass["tmp_path"] / "late").exists()
    for g in everyone:
        assert g.run_incidents == [], g.run_incidents
        assert g.contained
        if not g.student.startswith("hostile-"):
            continue
        printed = "".join(g.printed.values())
        for secret in (SECRET, PEER_SECRET, ENV_SECRET):
            assert secret not in printed, f"{g.student} read {secret}:\n{printed}"
        ran = {line.split(":")[0].removeprefix("ATTEMPT ") for line in printed.splitlines()
               if line.startswith("ATTEMPT ")}
        assert ran >= set(attempts[g.student]), f"{g.student} did not run every attempt: " \
                                                f"{printed}"
        # right code, whatever else it tried: full marks, each record as expected
        assert [r.as_expected for r in g.reports] == [True, True, True], g.student


def attempts_of(layout: dict[str, list[str]]) -> dict[str, list[str]]:
    snippet_names = {"installation": ["installation", "installation-new-file"],
                     "read": ["read-staff", "read-peer", "read-grader-environ",
                              "symlink-staff", "symlink-root"],
                     "grader": ["signal-grader", "ptrace-grader", "new-user-namespace"],
                     "shared-places": ["tmp", "home", "devices"]}
    return {f"hostile-{name}": [n for a in snippets for n in snippet_names.get(a, [a])]
            for name, snippets in layout.items()}


def test_one_submission_trying_everything_reaches_nothing(hostile_class):
    """The quick one: every attempt in one submission, beside an honest one, at -j 1."""
    layout = {"everything": list(hostile.ATTEMPTS)}
    klass = hostile_class(layout)
    for name in ("right-2", "wrong-w", "wrong-average"):  # a class of two is enough here
        for file in (klass["subs"] / name).iterdir():
            file.unlink()
        (klass["subs"] / name).rmdir()
    everyone, before = graded_everyone(klass, jobs=1)
    assert_contained(klass, everyone, before, attempts_of(layout))
    assert set(attempts_of(layout)["hostile-everything"]) == set(hostile.NAMES)
    right = next(g for g in everyone if g.student == "right-1")
    assert [r.as_expected for r in right.reports] == [True, True, True]


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_hostile_class_changes_no_row_but_its_own(hostile_class, jobs):
    """One submission per kind of attempt, among honest ones: the honest rows are identical,
    byte for byte, to a run of the honest submissions alone."""
    layout = {name: [name] for name in hostile.ATTEMPTS}
    layout["everything"] = list(hostile.ATTEMPTS)
    klass = hostile_class(layout)
    everyone, before = graded_everyone(klass, jobs)
    assert_contained(klass, everyone, before, attempts_of(layout))
    calm = [str(p) for p in sorted(klass["subs"].iterdir()) if "hostile-" not in p.name]
    options = Options(records=(str(klass["staff"]),), cases=2, limits=LIMITS)
    alone = {g.student: grade_formats.verdicts(g) for g in grade(calm, options, jobs=jobs)}
    scores = {g.student: g.score(lambda _: 1.0)[0] for g in everyone}
    assert (scores["right-1"], scores["right-2"], scores["wrong-w"],
            scores["wrong-average"]) == (3, 3, 2, 2)
    for g in everyone:
        if g.student in alone:
            assert json.dumps(grade_formats.verdicts(g)) == json.dumps(alone[g.student]), \
                g.student


def write_class(root: Path, staff_text: str, students: dict[str, str]) -> tuple[Path, Path]:
    (root / "staff").mkdir()
    (root / "staff" / "records.py").write_text(staff_text)
    for name, text in students.items():
        (root / "subs" / name).mkdir(parents=True)
        (root / "subs" / name / "layers.py").write_text(text)
    return root / "staff", root / "subs"


@pytest.mark.parametrize("breakage, says", [
    ("points = = 2\nRECORDS = [", "SyntaxError"),
    ("import does_not_exist\nRECORDS = [", "ModuleNotFoundError"),
])
def test_a_staff_file_that_does_not_load_stops_the_run(tmp_path, capsys, breakage, says):
    """No submission is graded, the exit is non-zero, the error names the file and the line."""
    text = textwrap.dedent(STAFF).replace("RECORDS = [", breakage, 1)
    staff, subs = write_class(tmp_path, text, {"right": RIGHT})
    code = grade_cli.main(["--records", str(staff), str(subs / "right"), "--uncontained"])
    err = capsys.readouterr()
    assert code == 2
    assert "right " not in err.out  # no row: nothing was graded
    assert str(staff / "records.py") in err.err and says in err.err
    line = text.splitlines().index(next(x for x in text.splitlines()
                                         if "does_not_exist" in x or "= =" in x)) + 1
    assert f"line {line}" in err.err, err.err


def test_uncontained_every_format_says_so_and_a_changed_staff_file_is_an_incident(
        tmp_path, capsys):
    """Graded with --uncontained (nothing contains the submissions), one submission edits the
    staff's records: the records were read before it ran, so the others are graded with the
    originals; the run ends non-zero, and every format says uncontained and the incident."""
    staff_file = tmp_path / "staff" / "records.py"
    editor = RIGHT + f"\nopen({str(staff_file)!r}, 'a').write('\\nRECORDS = []\\n')\n"
    staff, subs = write_class(tmp_path, textwrap.dedent(STAFF),
                              {"a-editor": editor, "b-right": RIGHT})
    out = tmp_path / "out"
    out.mkdir()
    code = grade_cli.main([
        "--records", str(staff), str(subs / "a-editor"), str(subs / "b-right"), "--cases", "2",
        "--uncontained", "--summary-csv", str(out / "summary.csv"),
        "--summary-json", str(out / "summary.json"), "--scores-csv", str(out / "scores.csv"),
        "--gradescope", str(out / "gs"), "--junit", str(out / "junit.xml"),
        "--html", str(out / "site")])
    text = capsys.readouterr()
    assert code == 1
    assert re.search(r"^b-right +3/3  all as expected$", text.out, re.M)  # the records as read
    assert "UNCONTAINED" in text.out and "INCIDENT of the run" in text.out
    assert "records.py changed during the run" in text.err
    for row in csv.DictReader((out / "scores.csv").open()):
        assert row["contained"] == "False" and "records.py changed" in row["run_incidents"]
    for row in csv.DictReader((out / "summary.csv").open()):
        assert row["contained"] == "False" and "records.py changed" in row["run_incidents"]
    assert all(r["contained"] is False for r in json.loads((out / "summary.json").read_text()))
    results = json.loads((out / "gs" / "b-right" / "results.json").read_text())
    assert results["extra_data"]["contained"] is False
    assert "UNCONTAINED" in results["output"] and "INCIDENT" in results["output"]
    for suite in ET.parse(out / "junit.xml").getroot():
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["contained"] == "false" and "records.py changed" in props["run_incident"]
    for page in (out / "site" / "index.html", out / "site" / "b-right" / "index.html"):
        assert "UNCONTAINED" in page.read_text() and "INCIDENT" in page.read_text()
    capsys.readouterr()
    assert grade_cli.main(["--records", str(staff), str(subs / "b-right"), "--cases", "2",
                           "--uncontained", "--json"]) == 2  # the edited records: RECORDS = []
    assert "holds no record" in capsys.readouterr().err


def test_json_rows_say_whether_the_run_was_contained(tmp_path, capsys):
    staff, subs = write_class(tmp_path, textwrap.dedent(STAFF), {"right": RIGHT})
    assert grade_cli.main(["--records", str(staff), str(subs / "right"), "--cases", "1",
                           "--uncontained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["right"]
    assert rows and all(r["contained"] is False for r in rows)
    assert all("run_incidents" not in r for r in rows)


@pytest.mark.parametrize("fake, says", [
    (None, "bwrap (bubblewrap) is not installed"),
    ("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n",
     "No permissions to creating new namespace"),
])
def test_without_a_sandbox_the_grade_stops_and_says_what_to_do(
        tmp_path, capsys, monkeypatch, fake, says):
    if fake is None:
        monkeypatch.setattr(bubblewrap, "executable", lambda: None)
    else:
        script = tmp_path / "bwrap"
        script.write_text(fake)
        script.chmod(0o755)
        monkeypatch.setattr(bubblewrap, "executable", lambda: str(script))
    bubblewrap.probe.cache_clear()
    staff, subs = write_class(tmp_path, textwrap.dedent(STAFF), {"right": RIGHT})
    try:
        code = grade_cli.main(["--records", str(staff), str(subs / "right")])
    finally:
        bubblewrap.probe.cache_clear()
    err = capsys.readouterr()
    assert code == 2 and "right " not in err.out
    assert says in err.err
    assert "apt-get install bubblewrap" in err.err and "--uncontained" in err.err


def test_a_hidden_path_inside_a_readable_tree_is_covered(tmp_path):
    """A staff file or folder kept inside the Python installation or handgrad (trees the
    sandbox mounts read-only) is covered: an empty folder; for a file, /dev/null on a mount
    without devices, which reads as permission denied."""
    require_bubblewrap()
    hidden_file = Path(sys.prefix) / "bin" / "activate"
    hidden_folder = Path(handgrad.__file__).resolve().parent / "grade"
    assert hidden_file.read_text() and any(hidden_folder.iterdir())
    probe = textwrap.dedent("""
        import errno, os, sys
        try:
            got = repr(open(sys.argv[1]).read())
        except OSError as exc:
            got = errno.errorcode[exc.errno]
        print(got, os.listdir(sys.argv[2]), os.path.exists(sys.argv[3]))
    """)
    args = bubblewrap.command(tmp_path, [hidden_file, hidden_folder])
    out = subprocess.run([*args, sys.executable, "-I", "-c", probe, str(hidden_file),
                          str(hidden_folder), str(Path(handgrad.__file__).resolve())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    read, listed, handgrad_there = out.stdout.split()
    assert read in ("''", "EACCES") and listed == "[]" and handgrad_there == "True"
