"""A derivation's Markdown as HTML for the report, with every tagged equation given an anchor.

The math stays LaTeX source (no script, no network): display equations become blocks whose id
is derived from their ``\\tag{..}``, so a tensor's tag in the report's table links to the
equation that computes it. Markdown itself is rendered by markdown-it-py (rich's own parser)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<![\\ ])\$")
TAG = re.compile(r"\\tag\{([^}]*)\}")
PLACEHOLDER = re.compile(r"HGMATH([DI])(\d+)Z")


def anchor(tag: str) -> str:
    """The HTML id of the equation tagged ``tag`` (letters, digits and - kept; others coded)."""
    return "eq-" + re.sub(r"[^A-Za-z0-9-]", lambda m: f"_{ord(m.group()):x}", tag)


def render(text: str) -> tuple[str, list[str]]:
    """(HTML, the tags of the display equations in order)."""
    display: list[str] = []
    inline: list[str] = []

    def keep_display(m: re.Match) -> str:
        display.append(m.group(1).strip())
        return f"HGMATHD{len(display) - 1}Z"

    def keep_inline(m: re.Match) -> str:
        inline.append(m.group(1))
        return f"HGMATHI{len(inline) - 1}Z"

    text = INLINE.sub(keep_inline, DISPLAY.sub(keep_display, text))
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    tags: list[str] = []

    def restore(m: re.Match) -> str:
        if m.group(1) == "I":
            return f'<code class="math">{html.escape(inline[int(m.group(2))])}</code>'
        latex = display[int(m.group(2))]
        found = TAG.findall(latex)
        tags.extend(found)
        ident = f' id="{anchor(found[0])}"' if found else ""
        label = "".join(f'<span class="eqtag">({html.escape(t)})</span>' for t in found)
        return (f'<span class="eq"{ident}><code>{html.escape(TAG.sub("", latex).strip())}'
                f"</code>{label}</span>")

    return PLACEHOLDER.sub(restore, body), tags


def doc_path(doc: str, origin: str = "", root: Path | None = None) -> Path | None:
    """Where a record's ``doc`` is: absolute, or relative to the project root, the working
    directory, or the record's own folder."""
    if not doc:
        return None
    path = Path(doc)
    candidates = [path] if path.is_absolute() else [
        *([root / path] if root else []), Path.cwd() / path,
        *([Path(origin).parent / path.name] if origin else [])]
    return next((p for p in candidates if p.is_file()), None)
