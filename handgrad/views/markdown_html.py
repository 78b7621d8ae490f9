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
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from latex2mathml.converter import convert
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

TAG = re.compile(r"\\tag\{([^}]*)\}")
SIBLING = re.compile(r"^([\w-]+)\.md(#.*)?$")
UNKNOWN = re.compile(r">(\\[A-Za-z]+)<")
STYLED = re.compile(r'<(mi|mn) mathvariant="([a-z-]+)">([A-Za-z0-9])</\1>')


def doc_filename(stem: str) -> str:
    """The report's file for the Markdown page ``<stem>.md`` (the notation page, a page another
    links to): ``doc-<stem>.html``, apart from the derivations' own pages."""
    return f"doc-{stem}.html"


def anchor(tag: str) -> str:
    """The HTML id of the equation tagged ``tag`` (letters, digits and - kept; others coded)."""
    return "eq-" + re.sub(r"[^A-Za-z0-9-]", lambda m: f"_{ord(m.group()):x}", tag)


def styled(match: re.Match) -> str:
    """``<mi mathvariant="script">T</mi>`` as ``<mi>𝒯</mi>``: browsers implementing MathML Core
    (Chromium) ignore ``mathvariant`` other than "normal", so \\mathcal, \\mathbf and \\mathbb
    would print as plain letters; the styled letter itself is a character of its own."""
    element, variant, char = match.groups()
    style = variant.replace("-", " ").upper().replace("DOUBLE STRUCK", "DOUBLE-STRUCK")
    if char.isdigit():
        names = [f"MATHEMATICAL {style} {unicodedata.name(char)}"]  # ... DIGIT ONE
    else:
        case = "CAPITAL" if char.isupper() else "SMALL"
        # A few letters live in the Letterlike Symbols block: script M is U+2133, not U+1D4A8.
        names = [f"MATHEMATICAL {style} {case} {char.upper()}", f"{style} {case} {char.upper()}"]
    for name in names:
        try:
            return f"<{element}>{unicodedata.lookup(name)}</{element}>"
        except KeyError:
            continue
    return match.group()


def mathml(latex: str, display: bool) -> str:
    """``latex`` as a MathML element, or as escaped source marked ``math-error``."""
    try:
        # HTML5 puts <math> in the MathML namespace itself; without the xmlns URL the page
        # names no address at all.
        out = STYLED.sub(styled, convert(latex, display="block" if display else "inline").replace(
            ' xmlns="http://www.w3.org/1998/Math/MathML"', ""))
        # latex2mathml passes a command it does not know through as text: <mi>\foo</mi>.
        unknown = UNKNOWN.findall(out)
        if not unknown:
            return out
        why = f"unknown command {', '.join(sorted(set(unknown)))}"
    except Exception as error:  # latex2mathml raises its own and plain errors alike
        why = f"{type(error).__name__} {error}".strip()
    return f'<code class="math-error" title="{html.escape(why)}">{html.escape(latex)}</code>'


def verdict_html(v) -> str:
    """The verdict beside an equation: the page's, the code's at the same tag, and where they
    part, which side is wrong; the message of a failing equation below."""
    word = {"pass": "right", "fail": "WRONG", "error": "ERROR", "skipped": "not checked",
            "unreliable": "undecided", "warning": "right (warning)"}.get(v.status, v.status)
    out = f'<span class="eqword">{html.escape(word)}'
    out += f" [{html.escape(v.kind)}]</span>" if v.kind else "</span>"
    if v.code:
        code = {"pass": "right", "fail": "WRONG", "error": "ERROR"}.get(v.code, v.code)
        out += f' <span class="eqcode">code: {html.escape(code)}' + (
            f" [{html.escape(v.code_kind)}]" if v.code_kind else "") + "</span>"
    if v.transcription == "code":
        out += ' <span class="eqnote">the page is right, the transcription is not</span>'
    elif v.transcription == "page":
        out += ' <span class="eqnote">the code is right, the page is not</span>'
    if v.message and v.status != "pass":
        out += f'<span class="eqmessage">{html.escape(v.message)}</span>'
    return f'<span class="eqverdict">{out}</span>'


def render(text: str, verdicts: Mapping[str, object] | None = None) -> tuple[str, list[str]]:
    """(HTML, the tags of the display equations in order). ``verdicts``: tag -> the
    equation's verdict (:class:`handgrad.transcription.EquationVerdict`), shown beside the
    equation, which is marked with its status's class (``eq fail``)."""
    tags: list[str] = []
    verdicts = verdicts or {}

    def inline(renderer, tokens, index, options, env) -> str:
        return mathml(tokens[index].content.strip(), display=False)

    def display(renderer, tokens, index, options, env) -> str:
        latex = tokens[index].content.strip()
        found = TAG.findall(latex)
        tags.extend(found)
        ident = f' id="{anchor(found[0])}"' if found else ""
        label = "".join(f'<span class="eqtag">({html.escape(t)})</span>' for t in found)
        verdict = verdicts.get(found[0]) if found else None
        status = f" {verdict.status}" if verdict is not None else ""
        beside = verdict_html(verdict) if verdict is not None else ""
        return (f'<span class="eq{status}"{ident}>'
                f'{mathml(TAG.sub("", latex).strip(), display=True)}{label}{beside}</span>')

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.use(dollarmath_plugin, allow_labels=False, double_inline=True)
    md.add_render_rule("math_inline", inline)
    md.add_render_rule("math_inline_double", display)
    md.add_render_rule("math_block", display)

    def link(renderer, tokens, index, options, env) -> str:
        # A page links its siblings as Markdown files; the report has them as doc-<stem>.html.
        sibling = SIBLING.match(tokens[index].attrGet("href") or "")
        if sibling:
            tokens[index].attrSet("href", doc_filename(sibling[1]) + (sibling[2] or ""))
        return renderer.renderToken(tokens, index, options, env)

    md.add_render_rule("link_open", link)
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
