"""MkDocs hooks of handgrad's site (``hooks:`` in ``mkdocs.yml``).

- The catalogue: every ``derivations/*.md`` becomes the page ``catalogue/<stem>/``, read from
  where it lives (no copy in ``docs/``), so the site teaches from the very pages the harness
  checks; their links to each other (``notation.md``) stay sibling links.
- Math: ``$...$`` and ``$$...$$`` are typeset on the server as MathML by the converter the HTML
  report uses (:func:`handgrad.views.markdown_html.mathml`, latex2mathml), so a page needs no
  script, font or network; Chromium and Firefox lay MathML out natively. A display equation's
  ``\\tag{..}`` becomes its label and its anchor (``#eq-M7``). An equation the converter cannot
  read is a warning, and ``mkdocs build --strict`` fails on it.
- The nav's Catalogue lists every derivation page, a new one under its own title.
- The CLI reference: a line ``<!-- handgrad-help: check -->`` becomes the ``--help`` of that
  subcommand, printed by argparse at build time, so the page cannot drift from the parser.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

from handgrad.views.markdown_html import TAG, anchor, mathml

log = logging.getLogger("mkdocs.plugins.handgrad")

ROOT = Path(__file__).resolve().parent.parent
DERIVATIONS = ROOT / "derivations"
CATALOGUE = "catalogue"

# Code is never math: fenced blocks (``` or ~~~, any indent) and inline code spans.
FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[^\n]*\n.*?^\1\2[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
# mdit-py-plugins' dollarmath rules, which the report and tests/test_derivations.py use: $$..$$
# anywhere; $..$ with no space inside either dollar, not escaped, not followed by a digit,
# across lines but not across paragraphs.
DISPLAY = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$", re.S)
INLINE = re.compile(r"(?<![\\$])\$(?![\s$])((?:\\\$|[^$\n]|\n(?![ \t]*\n))+?)"
                    r"(?<![\s\\])\$(?![\d$])")
HELP = re.compile(r"^<!-- handgrad-help: (\w+) -->$", re.M)
PLACEHOLDER = re.compile(r"(<p>)?HGMATH(\d+)X(</p>)?")


def title_of(source: Path) -> str:
    heading = next((line[2:].strip() for line in source.read_text().splitlines()
                    if line.startswith("# ")), source.stem)
    return heading.split(" (")[0]


def on_config(config):
    """A derivation page the nav's Catalogue does not list yet is added to it, under its own
    title, so a new ``derivations/<stem>.md`` is on the site without an edit here."""
    nav = config.get("nav") or []
    section = next((entry["Catalogue"] for entry in nav
                    if isinstance(entry, dict) and "Catalogue" in entry), None)
    if section is None:
        return config

    def listed(entry) -> str:
        return next(iter(entry.values())) if isinstance(entry, dict) else entry

    present = {listed(entry) for entry in section}
    for source in sorted(DERIVATIONS.glob("*.md")):
        if f"{CATALOGUE}/{source.name}" not in present:
            section.append({title_of(source): f"{CATALOGUE}/{source.name}"})
    return config


def on_files(files, config):
    """Add the derivation pages as ``catalogue/<stem>.md``, read from ``derivations/``."""
    for source in sorted(DERIVATIONS.glob("*.md")):
        files.append(File.generated(config, f"{CATALOGUE}/{source.name}",
                                    abs_src_path=str(source)))
    return files


def cli_help(command: str) -> str:
    """``handgrad COMMAND --help`` as argparse prints it, 100 columns wide."""
    from handgrad import cli

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            cli.main([command, "--help"])
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    text = out.getvalue().rstrip()
    if not text:
        log.warning("handgrad %s --help printed nothing", command)
    return f"```text\n{text}\n```"


def typeset(latex: str, display: bool, page: str) -> str:
    if not display:
        out = mathml(latex.strip(), display=False)
    else:
        found = TAG.findall(latex)
        ident = f' id="{anchor(found[0])}"' if found else ""
        label = "".join(f'<span class="eqtag">({html.escape(t)})</span>' for t in found)
        out = (f'<span class="eq"{ident}>{mathml(TAG.sub("", latex).strip(), display=True)}'
               f"{label}</span>")
    if 'class="math-error"' in out:
        log.warning("%s: cannot typeset $%s$", page, latex.strip())
    return out


def on_page_markdown(markdown, page, config, files):
    """Replace each formula by a placeholder that Markdown leaves alone (a formula's ``|``, ``_``
    and ``*`` would otherwise be read as table cells and emphasis), keeping its MathML for
    :func:`on_page_content`; expand the ``--help`` markers."""
    markdown = HELP.sub(lambda m: cli_help(m[1]), markdown)
    typeset_math: list[str] = []
    page.meta["handgrad_math"] = typeset_math
    kept: list[str] = []

    def keep(match: re.Match) -> str:
        kept.append(match.group())
        return f"\0{len(kept) - 1}\0"

    text = CODE_SPAN.sub(keep, FENCE.sub(keep, markdown))

    def put(latex: str, display: bool) -> str:
        typeset_math.append(typeset(latex, display, page.file.src_uri))
        return f"HGMATH{len(typeset_math) - 1}X"

    text = DISPLAY.sub(lambda m: put(m[1], True), text)
    text = INLINE.sub(lambda m: put(m[1], False), text)
    return re.sub(r"\0(\d+)\0", lambda m: kept[int(m[1])], text)


def on_page_content(html_text, page, config, files):
    typeset_math = page.meta.get("handgrad_math", [])

    def back(match: re.Match) -> str:
        out = typeset_math[int(match[2])]
        # A display equation alone in its paragraph becomes a block of its own.
        if match[1] and match[3] and out.startswith('<span class="eq"'):
            return f'<div class="eq-block">{out}</div>'
        return (match[1] or "") + out + (match[3] or "")

    return PLACEHOLDER.sub(back, html_text)


def on_post_page(output, page, config):
    """The formulas of headings, in the table of contents and the title."""
    return on_page_content(output, page, config, None)
