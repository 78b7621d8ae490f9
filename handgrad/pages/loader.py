"""A derivation page -> its tagged display equations and its Shapes table.

A page is a Markdown file or the Markdown cells of a Jupyter notebook (``.ipynb``, read with
:mod:`json`). Display math is ``$$ ... $$`` outside fenced code; a display with one ``\\tag{X}``
is one equation; in a display with ``\\begin{aligned}`` (or ``split``, ``align``) each line
``\\\\`` that carries a tag is one equation, and untagged lines continue the one before (an
``&=`` chain). The Shapes table is the first Markdown table under a heading *Shapes*: its first
column lists symbols (``$W_1, b_1$``), its second their shapes (``$(M, D)$, $(M)$``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

from handgrad.errors import DerivationError


@dataclass(frozen=True)
class Equation:
    """One tagged equation: its tag, its LaTeX (tag removed), its line (1-based, in the file;
    for a notebook, in its cell) and, for a notebook, the cell's index."""

    tag: str
    text: str
    line: int
    cell: int | None = None


@dataclass(frozen=True)
class Page:
    path: str
    equations: tuple[Equation, ...]
    shapes: dict[str, str] = field(default_factory=dict)  # symbol LaTeX -> shape LaTeX
    dims: tuple[str, ...] = ()  # the Shapes rows with no shape: dimensions
    # a symbol's other shapes, where its row gives several (labels or targets)
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def equation(self, tag: str) -> Equation:
        for e in self.equations:
            if e.tag == tag:
                return e
        raise KeyError(tag)


class PageError(DerivationError):
    """A page that cannot be read (it is never read as "nothing to check")."""


def load_page(path: str | Path) -> Page:
    """The page at ``path`` (.md or .ipynb), read again only when the file changes."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise PageError(f"the page {path} cannot be read: {exc}") from None
    return _load(str(path.resolve()), stamp)


@functools.lru_cache(maxsize=64)
def _load(name: str, stamp: int) -> Page:
    path = Path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PageError(f"the page {path} cannot be read: {exc}") from None
    if path.suffix == ".ipynb":
        return _notebook(path, text)
    equations, shapes, dims, alternatives = _markdown(text)
    return Page(str(path), tuple(equations), shapes, tuple(dims), alternatives)


def _notebook(path: Path, text: str) -> Page:
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PageError(f"the notebook {path} is not a Jupyter notebook ({exc})") from None
    equations, shapes, dims, alternatives = [], {}, [], {}
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        eqs, sh, ds, alt = _markdown(source)
        equations += [Equation(e.tag, e.text, e.line, i) for e in eqs]
        for k, v in sh.items():
            shapes.setdefault(k, v)
        for k, v in alt.items():
            alternatives.setdefault(k, v)
        dims += [d for d in ds if d not in dims]
    return Page(str(path), tuple(equations), shapes, tuple(dims), alternatives)


def _markdown(text: str) -> tuple[list[Equation], dict[str, str], list[str], dict]:
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    lines = text.splitlines(keepends=True)
    equations: list[Equation] = []
    shapes: dict[str, str] = {}
    dims: list[str] = []
    alternatives: dict[str, tuple[str, ...]] = {}
    in_shapes = False
    table_done = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            title = tokens[i + 1].content.strip().lower()
            in_shapes = title.startswith("shapes")
        elif tok.type == "table_open" and in_shapes and not table_done:
            i = _table(tokens, i, shapes, dims, alternatives)
            table_done = True
            continue
        elif tok.type in ("paragraph_open",) and tok.map:
            start, end = tok.map
            equations += _displays("".join(lines[start:end]), start + 1)
        i += 1
    return equations, shapes, dims, alternatives


def _table(tokens, i: int, shapes: dict[str, str], dims: list[str], alternatives: dict) -> int:
    row: list[str] = []
    header = True
    while tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tbody_open":
            header = False
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "inline":
            row.append(tok.content)
        elif tok.type == "tr_close" and not header and row:
            symbols = _math_items(row[0])
            shape_cells = _math_items(row[1]) if len(row) > 1 else []
            if symbols and not shape_cells:
                dims.extend(symbols)
            for k, sym in enumerate(symbols):
                if shape_cells:
                    shapes[sym] = shape_cells[min(k, len(shape_cells) - 1)]
            if len(symbols) == 1 and len(shape_cells) > 1:
                alternatives[symbols[0]] = tuple(shape_cells)
        i += 1
    return i + 1


def _math_items(cell: str) -> list[str]:
    """The ``$...$`` spans of a cell, each split at its top-level commas."""
    items: list[str] = []
    parts = cell.split("$")
    for span in parts[1::2]:
        depth, start = 0, 0
        for j, ch in enumerate(span):
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(span[start:j].strip())
                start = j + 1
        items.append(span[start:].strip())
    return [s for s in items if s]


def _displays(block: str, first_line: int) -> list[Equation]:
    """The tagged equations of the ``$$ ... $$`` displays in one paragraph."""
    out: list[Equation] = []
    pos = 0
    while True:
        start = block.find("$$", pos)
        if start < 0:
            return out
        end = block.find("$$", start + 2)
        if end < 0:
            return out
        body = block[start + 2:end]
        line = first_line + block.count("\n", 0, start)
        out += _split_display(body, line)
        pos = end + 2


def _split_display(body: str, line: int) -> list[Equation]:
    env = next((e for e in ("aligned", "split", "align*", "align", "gathered")
                if f"\\begin{{{e}}}" in body), None)
    if env is None:
        tag, text = _untag(body)
        return [Equation(tag, " ".join(text.split()), line)] if tag else []
    inner = body[body.index(f"\\begin{{{env}}}") + len(env) + 8:]
    inner = inner[:inner.index(f"\\end{{{env}}}")] if f"\\end{{{env}}}" in inner else inner
    outer_tag, _ = _untag(body.replace(inner, ""))
    rows = inner.split("\\\\")
    out: list[Equation] = []
    if outer_tag:
        # the whole display is one equation: a chain lhs &= a &= b
        text = " ".join(r.replace("&", " ") for r in rows)
        return [Equation(outer_tag, " ".join(text.split()), line)]
    pending = ""
    offset = 0
    for row in rows:
        tag, text = _untag(row)
        text = text.replace("&", " ")
        pending = f"{pending} {text}" if pending and text.lstrip().startswith("=") else \
            (text if tag or not pending else pending + " " + text)
        if tag:
            out.append(Equation(tag, " ".join(pending.split()), line + offset))
            pending = ""
        offset += row.count("\n")
    return out


def _untag(text: str) -> tuple[str, str]:
    key = "\\tag{"
    at = text.find(key)
    if at < 0:
        return "", text
    close = text.find("}", at)
    return text[at + len(key):close].strip(), text[:at] + text[close + 1:]
