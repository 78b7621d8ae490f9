"""The Python examples of the pages written for issue 24 run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["reference/adapter-notes.md", "reference/json-rows.md", "explanation/undecidable.md"]


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_runs(page):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    for block in blocks:
        if "rows.json" in block:  # reads the output of the shell example above it
            continue
        exec(compile(block, f"{page}", "exec"), {"__name__": "docs_example"})
