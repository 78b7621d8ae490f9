"""What this repository asks of its own derivations beyond the checks every record gets from
handgrad's pytest plugin: a Markdown derivation with its sections, and every equation tag cited
in the code. Names no derivation."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_derivation_is_documented(record):
    assert record.doc, f"{record.name}: no Markdown derivation found next to its module"
    text = (ROOT / record.doc).read_text()
    # A derivation of the source's models lists how it differs from the source; one without a
    # source write-up lists the mistakes people make instead.
    last = "Differences from the source" if record.source else "Common mistakes"
    for section in ("Shapes", "Forward", "Backward", "Gradients", last):
        assert re.search(rf"^#+ .*{section}", text, re.M), \
            f"{record.doc} lacks a '{section}' section"
    tags = set(re.findall(r"\\tag\{([^}]+)\}", text))
    missing = sorted(set(record.tags.values()) - tags)
    assert not missing, f"{record.name}: tags {missing} are cited but not in {record.doc}"


def test_every_tag_is_cited_in_code(record):
    """A tag in the record must also stand in a comment, ``(M7)``, beside the code computing it."""
    source = "\n".join(p.read_text() for p in (ROOT / "derivations").glob("*.py"))
    uncited = sorted(t for t in set(record.tags.values()) if f"({t})" not in source)
    assert not uncited, f"{record.name}: tags {uncited} are cited by no comment in derivations/"
