"""A derivation's Markdown as HTML for the report, its math typeset as MathML, every tagged
equation given an anchor.

Markdown is parsed by markdown-it-py (rich's own parser) with mdit-py-plugins' dollarmath, which
finds ``$...$`` and ``$$...$$``; latex2mathml turns each into MathML, which Chromium and Firefox
typeset natively: no script, no font, no network. A display equation's ``\\tag{..}`` becomes its
label and its anchor, so a tensor's tag in the report's table links to the equation that
computes it. An equation latex2mathml cannot convert stays LaTeX source in a
``code.math-error`` element, never a broken page."""

from __future__ import annotations

import html
import re
from pathlib import Path

from latex2mathml.converter import convert
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

TAG = re.compile(r"\\tag\{([^}]*)\}")
UNKNOWN = re.compile(r">(\\[A-Za-z]+)<")


def anchor(tag: str) -> str:
    """The HTML id of the equation tagged ``tag`` (letters, digits and - kept; others coded)."""
    return "eq-" + re.sub(r"[^A-Za-z0-9-]", lambda m: f"_{ord(m.group()):x}", tag)


def mathml(latex: str, display: bool) -> str:
    """``latex`` as a MathML element, or as escaped source marked ``math-error``."""
    try:
        # HTML5 puts <math> in the MathML namespace itself; without the xmlns URL the page
        # names no address at all.
        out = convert(latex, display="block" if display else "inline").replace(
            ' xmlns="http://www.w3.org/1998/Math/MathML"', "")
        # latex2mathml passes a command it does not know through as text: <mi>\foo</mi>.
        unknown = UNKNOWN.findall(out)
        if not unknown:
            return out
        why = f"unknown command {', '.join(sorted(set(unknown)))}"
    except Exception as error:  # latex2mathml raises its own and plain errors alike
        why = f"{type(error).__name__} {error}".strip()
    return f'<code class="math-error" title="{html.escape(why)}">{html.escape(latex)}</code>'


def render(text: str) -> tuple[str, list[str]]:
    """(HTML, the tags of the display equations in order)."""
    tags: list[str] = []

    def inline(renderer, tokens, index, options, env) -> str:
        return mathml(tokens[index].content.strip(), display=False)

    def display(renderer, tokens, index, options, env) -> str:
        latex = tokens[index].content.strip()
        found = TAG.findall(latex)
        tags.extend(found)
        ident = f' id="{anchor(found[0])}"' if found else ""
        label = "".join(f'<span class="eqtag">({html.escape(t)})</span>' for t in found)
        return (f'<span class="eq"{ident}>{mathml(TAG.sub("", latex).strip(), display=True)}'
                f"{label}</span>")

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.use(dollarmath_plugin, allow_labels=False, double_inline=True)
    md.add_render_rule("math_inline", inline)
    md.add_render_rule("math_inline_double", display)
    md.add_render_rule("math_block", display)
    return md.render(text), tags


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
