"""One malformed record never hides the others of its file, and a run that checked nothing
never reads as a success."""

from __future__ import annotations

import textwrap

from handgrad import cli
from handgrad.discovery import discover_path

RECORDS = textwrap.dedent("""
    import dataclasses
    from tests import test_broken

    FIRST = dataclasses.replace(test_broken.LINEAR, name="first-one")
    LAYERS = [
        dataclasses.replace(test_broken.LINEAR, name="in-list-good"),
        dataclasses.replace(test_broken.LINEAR, name="in-list-bad",
                            dims={"N": (1, 4), "D": (1, 5), "K": "Kin - 1"}),
    ]
    ALONE = dataclasses.replace(test_broken.LINEAR, name="alone-bad",
                                dims={"N": (1, 4), "D": "Din + 1", "K": (1, 3)})
    LAST = dataclasses.replace(test_broken.LINEAR, name="last-one")
""")


def test_a_malformed_record_is_an_error_of_its_own_and_the_others_are_checked(tmp_path):
    """Was: every record of the file gone, and "0/0 derivations as expected"."""
    (tmp_path / "layers.py").write_text(RECORDS)
    records, broken = discover_path(tmp_path)
    assert sorted(r.name for r in records) == ["first-one", "in-list-good", "last-one"]
    assert len(broken) == 2, broken
    text = "\n".join(b.message for b in broken)
    assert "in-list-bad" in text and "Kin" in text and "alone-bad" in text and "Din" in text
    assert "line 8:" in text and "line 11:" in text


def test_the_cli_checks_the_others_and_fails_on_the_malformed_one(tmp_path, capsys):
    (tmp_path / "layers.py").write_text(RECORDS)
    assert cli.main(["check", "--path", str(tmp_path), "--cases", "1"]) == 1
    out, err = capsys.readouterr()
    assert "3/3 derivations as expected, 2 not loaded" in out
    assert "in-list-bad" in err and "alone-bad" in err


def test_a_run_that_checked_nothing_is_not_a_success(tmp_path, capsys):
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert cli.main(["check", "--path", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "nothing was checked" in out and "as expected" not in out
    assert "nothing was checked" in err


def test_the_reproduce_command_names_the_path_unless_one_configured_path_finds_it(
        tmp_path, monkeypatch):
    """Under pytest, with one folder per student configured, a record name can repeat: the
    reproduce command gives --path."""
    import dataclasses

    from handgrad.localise import path_hint
    from tests.test_broken import LINEAR

    for student in ("alice", "bob"):
        (tmp_path / student).mkdir()
        (tmp_path / student / "layers.py").write_text("")
    record = dataclasses.replace(LINEAR, origin=str(tmp_path / "alice" / "layers.py"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.handgrad]\npaths = ["alice", "bob"]\n')
    assert path_hint(record) == "alice/layers.py"
    (tmp_path / "pyproject.toml").write_text('[tool.handgrad]\npaths = ["alice"]\n')
    assert path_hint(record) == ""
    elsewhere = dataclasses.replace(LINEAR, origin=str(tmp_path / "bob" / "layers.py"))
    assert path_hint(elsewhere) == "bob/layers.py"
