"""``handgrad grade`` marks a submitted page: the staff's record names the page each student
hands in (``page="derivation.md"``, a path relative to the submission's folder), with or without
the student's code. Each tagged equation of the student's page is a row of the grade with its
verdict; a page that is missing, empty, a link out of the submission's folder (to the staff's
records, say) or oversized is an error row that says which, and never passes; the grader's
scratch paths never reach a student's output."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from handgrad.grade import cli as grade_cli
from tests.sandboxed import require_bubblewrap

CORPUS = Path(__file__).parent / "corpus" / "pages"
CODE = (CORPUS / "two_layer.py").read_text()

STAFF = CODE + '''

from handgrad import Derivation

import layers as L

COMMON = dict(
    reference=reference, inputs="X: n0 m, Y: n2 m, W1: n1 n0, b1: n1 1, W2: n2 n1, b2: n2 1",
    dims={"m": (1, 4), "n0": (1, 3), "n1": (2, 4), "n2": (2, 3)}, nondiff={"X", "Y"},
    samplers={"Y": one_hot_columns}, intermediates=("Z2", "Z1"),
    tags={"Z2": "6", "W2": "7", "b2": "8", "Z1": "9", "W1": "10", "b1": "11"},
    page="derivation.md",
    symbols={r"\\mathcal L": "L", r"\\hat Y": "A2", "W^{[1]}": "W1", "b^{[1]}": "b1",
             "W^{[2]}": "W2", "b^{[2]}": "b2", "Z^{[1]}": "Z1", "A^{[1]}": "A1",
             "Z^{[2]}": "Z2", r"\\delta^{(1)}": r"\\frac{\\partial L}{\\partial Z^{[1]}}",
             r"\\delta^{(2)}": r"\\frac{\\partial L}{\\partial Z^{[2]}}"})

RECORDS = [
    # week 1: the page alone (derive, check, then transcribe)
    Derivation(name="page", forward=None, backward=None, **COMMON),
    # week 2: the code beside the same page
    Derivation(name="code", forward=L.forward, backward=L.backward, **COMMON),
]
'''

RIGHT_PAGE = (CORPUS / "two_layer.md").read_text()
WRONG_PAGE = (CORPUS / "two_layer_wrong.md").read_text()
SLIP = CODE + "\n\nbackward = backward_sigma_for_prime\n"


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    require_bubblewrap()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    (root / "staff").mkdir()
    (root / "staff" / "records.py").write_text(STAFF)
    students = {
        "right": {"derivation.md": RIGHT_PAGE, "layers.py": CODE},
        "page-wrong": {"derivation.md": WRONG_PAGE, "layers.py": CODE},
        "code-slip": {"derivation.md": RIGHT_PAGE, "layers.py": SLIP},
        "no-page": {"layers.py": CODE},
        "empty-page": {"derivation.md": "# My derivation\n\nI ran out of time.\n",
                       "layers.py": CODE},
        "link-out": {"layers.py": CODE},
        "huge-page": {"derivation.md": RIGHT_PAGE + "%" * (1 << 20), "layers.py": CODE},
    }
    for name, files in students.items():
        (root / "subs" / name).mkdir(parents=True)
        for file, text in files.items():
            (root / "subs" / name / file).write_text(text)
    (root / "subs" / "link-out" / "derivation.md").symlink_to(root / "staff" / "records.py")
    folders = [str(p) for p in sorted((root / "subs").iterdir())]
    out = tmp_path_factory.mktemp("out")
    argv = ["--records", str(root / "staff"), *folders, "--cases", "1", "--timeout", "5",
            "--memory-mb", "1024", "-j", "2", "--json", "--html", str(out / "site"),
            "--scores-csv", str(out / "scores.csv")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = grade_cli.main(argv)
    return status, printed.getvalue(), json.loads(printed.getvalue()), root, out


def rows(graded, student: str, record: str) -> list[dict]:
    found = [r for r in graded[2][student] if r["derivation"] == record]
    assert found, (student, record)
    return found


def equations(graded, student: str, record: str) -> dict[str, set[tuple[str, str]]]:
    """tag -> the (status, kind) pairs its rows got over the cases."""
    out: dict[str, set] = {}
    for r in rows(graded, student, record):
        if r["check"] == "equation":
            out.setdefault(r["tag"] or r["tensor"], set()).add((r["status"], r["kind"]))
    return out


def scores(graded) -> dict[str, tuple[float, float, str]]:
    out = graded[4]
    return {row["student"]: (float(row["score"]), float(row["max_score"]), row["kinds"])
            for row in csv.DictReader((out / "scores.csv").open())}


RIGHT = {("pass", "")}


def test_a_right_page_earns_its_points_with_and_without_code(graded):
    assert graded[0] == 0
    assert scores(graded)["right"][:2] == (2, 2)
    for record in ("page", "code"):
        got = equations(graded, "right", record)
        assert sorted(got, key=int) == [str(i) for i in range(1, 12)]
        assert all(v == RIGHT for v in got.values()), got
    # the page alone runs no hand code and says so
    skipped = [r for r in rows(graded, "right", "page") if r["check"] == "contract"]
    assert skipped and all(r["status"] == "skipped" for r in skipped)


def test_a_wrong_page_loses_its_points_at_each_wrong_equation(graded):
    got = equations(graded, "page-wrong", "page")
    assert got["6"] == {("fail", "sign")} and got["7"] == {("fail", "shape")}
    assert {s for s, _ in got["9"]} == {"fail"} and {s for s, _ in got["10"]} == {"fail"}
    assert all(got[t] == RIGHT for t in set(got) - {"6", "7", "9", "10"}), got
    score, top, kinds = scores(graded)["page-wrong"]
    assert (score, top) == (0, 2) and "page:sign" in kinds
    # the code is right: its own checks pass beside the page's failures
    code = [r for r in rows(graded, "page-wrong", "code") if r["check"] == "autograd"]
    assert code and all(r["status"] == "pass" for r in code)


def test_a_code_slip_beside_a_right_page(graded):
    assert equations(graded, "code-slip", "page") == {str(i): RIGHT for i in range(1, 12)}
    score, top, kinds = scores(graded)["code-slip"]
    assert (score, top) == (1, 2) and kinds.startswith("code:")
    failing = {r["tensor"] for r in rows(graded, "code-slip", "code")
               if r["check"] == "autograd" and r["status"] == "fail"}
    assert "Z1" in failing, failing


@pytest.mark.parametrize("student, says", [
    ("no-page", "derivation.md cannot be read: [Errno 2] No such file or directory"),
    ("empty-page", "has no backward and no tagged equation in"),
    ("link-out", "derivation.md is outside the submission's folder"),
    ("huge-page", "derivation.md is larger than 1 MiB: not read"),
])
def test_a_page_that_is_not_there_to_read_never_passes(graded, student, says):
    page = [r for r in rows(graded, student, "page") if r["check"] == "equation"]
    assert page and all(r["status"] == "error" and r["kind"] == "page-error" for r in page)
    assert all(says in r["message"] for r in page), page[0]["message"]
    root = graded[3]
    if student != "empty-page":
        assert all(str(root / "subs" / student / "derivation.md") in r["message"] for r in page)
    # The code record reads the same page: one that cannot be read fails it too; an empty one
    # leaves it its code's verdict (right here), with no equation row to count.
    assert scores(graded)[student][0] == (1 if student == "empty-page" else 0)
    if student == "empty-page":
        assert not [r for r in rows(graded, student, "code") if r["check"] == "equation"]


def test_nothing_of_the_staff_or_the_scratch_reaches_the_output(graded):
    printed = graded[1]
    assert "handgrad-grade-" not in printed  # the grader's scratch copy is named as the folder
    assert "RECORDS = [" not in printed and "week 1: the page alone" not in printed
    site = graded[4] / "site"
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "handgrad-grade-" not in text and "week 1: the page alone" not in text, page


def test_the_html_marks_the_failing_equation_of_the_students_page(graded):
    site = graded[4] / "site" / "page-wrong"
    pages = {p.name: p.read_text() for p in site.glob("*.html")}
    page = next(text for name, text in pages.items() if name.startswith("page"))
    assert "(6)" in page and "sign" in page
