"""docs/reference/json-rows.md lists exactly the statuses and fields that ``--json`` emits."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from handgrad import cli
from handgrad.report import STATUS_WORD, Result

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "json-rows.md"


def _first_column(section: str) -> list[str]:
    text = PAGE.read_text().split(f"## {section}")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M)
    return rows[1:] if rows[:1] == ["status"] else rows  # the header row names a column


def test_the_page_lists_every_status_with_its_terminal_word():
    assert set(_first_column("Statuses")) == set(STATUS_WORD)
    text = PAGE.read_text()
    for status, word in STATUS_WORD.items():
        assert f"| `{status}` | `{word}` |" in text, status


def test_the_page_lists_every_field_json_emits(capsys):
    """The fields from the code (Result's, plus passed and expect), and from a real run."""
    from_code = {f.name for f in dataclasses.fields(Result)} | {"passed", "expect"}
    documented = _first_column("Fields")
    assert len(documented) == len(set(documented))
    assert set(documented) == from_code
    assert cli.main(["check", "fn-softmax-ce", "--cases", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(set(r) == from_code for r in rows)
    assert {r["status"] for r in rows} <= set(STATUS_WORD)
