"""A griffe extension for the API reference: handgrad's docstrings, written for ``help()`` and
Sphinx-style reading, rendered as the Markdown that mkdocstrings expects.

- ``term:`` (or a line that starts with ````code````) followed by a more indented block is a
  definition: ``forward, backward, reference:`` and its paragraph become a Markdown definition
  list entry.
- ``text::`` ends with ``:``; the indented block after it stays an (indented) code block.
- ``:class:`x```, ``:mod:`x```, ``:func:`x```, ``:data:`x``` and the like become ```x```.
- An underlined section title (``Fields`` over ``------``) becomes a bold line.

The docstrings themselves are not changed; this only reads them.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:class|mod|func|meth|data|attr|obj|exc):`~?([^`]+)`")
UNDERLINE = re.compile(r"^\s*[-=~]{3,}\s*$")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def markdown(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    code_indent: int | None = None  # the indent of the line before a code block, inside one
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        stripped = line.strip()
        if code_indent is not None:
            if stripped and indent_of(line) <= code_indent:
                code_indent = None
            else:
                out.append(line)
                i += 1
                continue
        if stripped.endswith("::"):
            out.append(line[:-1])
            code_indent = indent_of(line)
            i += 1
            continue
        if stripped and UNDERLINE.match(nxt) and len(nxt.strip()) >= len(stripped) - 1:
            out.extend([f"**{stripped}**", ""])
            i += 2
            continue
        is_term = (stripped and nxt.strip() and indent_of(nxt) > indent_of(line)
                   and (stripped.endswith(":") or stripped.startswith("``")))
        if is_term:
            term = stripped[:-1] if stripped.endswith(":") else stripped
            if out and out[-1].strip():
                out.append("")
            out.append(ROLE.sub(r"`\1`", term if term.startswith("``") else f"`{term}`"))
            base = indent_of(nxt)
            first = True
            i += 1
            while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) >= base):
                body = lines[i][base:] if lines[i].strip() else ""
                out.append((":   " if first else "    ") + ROLE.sub(r"`\1`", body) if body
                           else "")
                first = False
                i += 1
            while out and not out[-1]:
                out.pop()
            out.append("")
            continue
        out.append(ROLE.sub(r"`\1`", line))
        i += 1
    return "\n".join(out)


class ReadableDocstrings(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
