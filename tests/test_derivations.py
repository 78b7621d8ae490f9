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


# The catalogue's notation: derivations/notation.md is a page without a record. Its Symbols
# table gives each symbol one meaning and the pages that may use its letter.
NOTATION = ROOT / "derivations" / "notation.md"
MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", re.S)
# Words set in roman and tag labels are names, not symbols; subscripts and superscripts hold
# indices and layer numbers, local to an equation.
NAMES = re.compile(r"\\(?:text|mathrm|operatorname|tag|textstyle)\s*\{[^{}]*\}")
SCRIPT = re.compile(r"[_^](?:\{(?:[^{}]|\{[^{}]*\})*\}|\\[A-Za-z]+|.)")
LETTER = re.compile(r"\\math(cal|bf|bb)\s*\{?\s*([A-Za-z0-9])\}?|(\\[A-Za-z]+)|([A-Za-z])")
# LaTeX commands that are operators or layout, not symbols.
GREEK = {"alpha", "beta", "gamma", "delta", "varepsilon", "epsilon", "eta", "lambda", "mu", "nu",
         "xi", "pi", "Pi", "rho", "sigma", "tau", "theta", "kappa", "omega", "Omega", "Gamma",
         "Delta", "Lambda", "Sigma", "phi", "varphi", "psi", "chi", "zeta", "iota"}


def letters(math: str) -> set[str]:
    """The symbols' letters in a piece of LaTeX: ``W``, ``\\sigma``, ``\\mathcal T``,
    ``\\mathbf e``; without subscripts, superscripts, roman words and operators."""
    text = SCRIPT.sub(" ", NAMES.sub(" ", math))
    found = set()
    for style, styled, command, letter in LETTER.findall(text):
        if style:
            found.add(f"\\math{style} {styled}")
        elif command and command[1:] in GREEK:
            found.add(command)
        elif letter:
            found.add(letter)
    return found


def reserved(notation: str) -> dict[str, set[str]]:
    """Letter -> the pages that may use it, from the Symbols table (``*`` = any page)."""
    table = notation.split("## Symbols", 1)[1]
    allowed: dict[str, set[str]] = {}
    for row in re.findall(r"^\|(.+)\|\s*$", table, re.M):
        cells = [c.strip() for c in row.split("|")]
        if len(cells) != 3 or cells[0] in ("symbol", "---"):
            continue
        pages = set(cells[2].split())
        for letter in letters(" ".join(m.group(1) or m.group(2) for m in MATH.finditer(cells[0]))):
            allowed.setdefault(letter, set()).update(pages)
    return allowed


def misused(page: str, text: str, allowed: dict[str, set[str]]) -> list[str]:
    """Letters of ``text``'s math that the notation reserves for other pages."""
    used = set().union(*(letters(m.group(1) or m.group(2)) for m in MATH.finditer(text)))
    return sorted(s for s in used if s in allowed and "*" not in allowed[s]
                  and page not in allowed[s])


def pages() -> list[Path]:
    return sorted(p for p in (ROOT / "derivations").glob("*.md") if p != NOTATION)


def test_notation_is_a_page_without_a_record():
    from handgrad.discovery import derivations
    docs = {Path(r.doc).name for r in derivations([ROOT / "derivations"])}
    assert NOTATION.name not in docs
    assert {p.name for p in pages()} <= docs, "a page that no record documents"


def test_every_page_links_to_the_notation():
    unlinked = [p.name for p in pages() if "(notation.md)" not in p.read_text()]
    assert not unlinked, f"pages without a link to notation.md: {unlinked}"


def test_no_page_gives_a_reserved_symbol_another_meaning():
    allowed = reserved(NOTATION.read_text())
    assert {"L", "W", "\\sigma", "\\mathcal T", "H"} <= set(allowed)
    wrong = {p.stem: bad for p in pages() if (bad := misused(p.stem, p.read_text(), allowed))}
    assert not wrong, f"letters the notation page gives to other pages: {wrong}"


def test_the_reserved_symbol_check_catches_a_planted_clash():
    """lstm.md writing the keys' count S, a height H_o and the cell state beside a bias c: the
    check must name S (attention only) in lstm; H and c are lstm's own."""
    allowed = reserved(NOTATION.read_text())
    planted = r"Attention over $S$ keys: $$h_t = o_t \odot \tanh(c_t) + W_y^\top S \tag{X1}$$"
    assert misused("lstm", planted, allowed) == ["S"]
    assert misused("attention", planted, allowed) == ["c", "h", "o"]
    assert misused("maxpool", r"a map of $H \times n_W$, bias $\mathcal T$", allowed) == \
        ["H", "\\mathcal T"]
    assert misused("lenet5", r"$\mathrm{MeanPool}(Y)$ and $W^{(l,p,d)}_{uv}$", allowed) == []


def test_every_equation_of_every_page_converts_to_mathml():
    from handgrad.views.markdown_html import render
    for page in [*pages(), NOTATION]:
        html, _ = render(page.read_text())
        assert "<math" in html, f"{page.name}: no equation typeset"
        assert "math-error" not in html, f"{page.name}: an equation did not convert: " + \
            ", ".join(re.findall(r'<code class="math-error">(.*?)</code>', html))
