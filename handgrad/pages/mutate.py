"""Mutants of a page's equations: the mistakes a student makes on paper, made on purpose.

Each operator changes one thing in the right side of one tagged equation, in the LaTeX itself:
a sign, a factor, a transpose dropped or added, ``f`` written for ``f'``, a term dropped, a time
offset or an index pair swapped. The equation is read with pylatexenc's node walker; a mutant is
the source string with one span replaced, so everything else on the page stays byte for byte.
A mutant is *caught* when the equation's check fails at its own tag with one of the kinds its
operator can cause (``Mutant.kinds``); :func:`mutate_page` gives the page text to check.

Usage::

    for m in mutants(r"\\frac{\\partial L}{\\partial h} = \\frac{\\partial L}{\\partial a_2} W_2"):
        print(m.operator, m.latex)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pylatexenc.latexwalker import (
    LatexCharsNode,
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexMathNode,
    LatexWalker,
)

# The kinds of failure each operator can cause. A transpose dropped from a non-square matrix
# does not type-check (shape); from a square one it changes values; dropped from the whole right
# side it is the transposed result. A time offset is seen as a shift along an axis (offset), or
# as wrong values where the shifted step is cut off at the sequence's end.
# "value" is a scalar's (a loss) wrong value, for which no pattern can be told.
VALUE_KINDS = ("values", "value", "slices", "entries", "zero-entries", "mask",
               "nonzero-where-zero", "zero", "threshold")
KINDS = {
    "sign": ("sign",),
    "factor": ("factor",),
    "transpose-dropped": ("shape", "transposed", *VALUE_KINDS),
    "transpose-added": ("shape", "transposed", *VALUE_KINDS),
    "f-for-fprime": VALUE_KINDS,
    # a dropped bias is the same shift in every row (offset)
    "dropped-term": (*VALUE_KINDS, "factor", "sign", "offset"),
    "time-offset": ("offset", "shape", *VALUE_KINDS),
    "index-swap": ("shape", "transposed", "offset", *VALUE_KINDS),
}
TRANSPOSES = {"top", "intercal", "mathsf", "mathrm"}
TIME_INDICES = ("t", "k")


@dataclass(frozen=True)
class Mutant:
    """One changed equation: ``latex`` is the whole equation source with ``original`` (at
    ``pos``) replaced by ``replacement``."""

    operator: str
    latex: str
    pos: int
    original: str
    replacement: str

    @property
    def kinds(self) -> tuple[str, ...]:
        """The failure kinds that count as this mutant caught with the right kind."""
        return KINDS[self.operator]

    @property
    def change(self) -> str:
        before, after = self.original.strip(), self.replacement.strip()
        return f"{before or '(nothing)'} -> {after or '(nothing)'}"


@dataclass(frozen=True)
class _Tok:
    """A token of the equation: one character of a chars node, or a whole macro, group or
    environment node (``node``), with its span in the source."""

    text: str
    pos: int
    end: int
    node: object = None

    @property
    def macro(self) -> str:
        return self.node.macroname if isinstance(self.node, LatexMacroNode) else ""


def _tokens(nodes, source: str) -> list[_Tok]:
    out: list[_Tok] = []
    for n in nodes or ():
        if n is None:
            continue
        if isinstance(n, LatexCharsNode):
            out += [_Tok(ch, n.pos + i, n.pos + i + 1) for i, ch in enumerate(n.chars)]
        else:
            out.append(_Tok(source[n.pos:n.pos + n.len], n.pos, n.pos + n.len, n))
    return out


def _children(tok: _Tok) -> list:
    """Node lists inside a token: a group's or environment's body, a macro's arguments."""
    n = tok.node
    if isinstance(n, (LatexGroupNode, LatexEnvironmentNode, LatexMathNode)):
        return [n.nodelist]
    if isinstance(n, LatexMacroNode) and n.nodeargd is not None:
        return [[a] if not isinstance(a, LatexGroupNode) else a.nodelist
                for a in n.nodeargd.argnlist if a is not None]
    return []


def _is_gradient(tok: _Tok) -> bool:
    """A ``\\frac{\\partial ...}{\\partial ...}``: a symbol's name, not an expression to mutate
    inside."""
    return tok.macro in ("frac", "tfrac", "dfrac") and "\\partial" in tok.text


def _split_top(toks: list[_Tok], seps: str) -> list[list[_Tok]]:
    """Split a token sequence at the characters of ``seps`` outside brackets."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.node is None and t.text in "([":
            depth += 1
        elif t.node is None and t.text in ")]":
            depth -= 1
        if depth == 0 and t.node is None and t.text in seps:
            parts.append([t])
            continue
        parts[-1].append(t)
    return parts


def _right_side(latex: str) -> list[_Tok]:
    """The tokens after the last top-level ``=``, without the ``\\tag``."""
    nodes, _, _ = LatexWalker(latex, tolerant_parsing=True).get_latex_nodes()
    toks = [t for t in _tokens(nodes, latex) if t.macro != "tag"]
    toks = [t for t in toks if not (isinstance(t.node, LatexGroupNode) and _follows_tag(t, latex))]
    sides = _split_top(toks, "=")
    return [t for t in sides[-1] if t.text != "="] if len(sides) > 1 else []


def _follows_tag(tok: _Tok, latex: str) -> bool:
    return latex[:tok.pos].rstrip().endswith("\\tag")


def _span(toks: list[_Tok]) -> tuple[int, int]:
    body = [t for t in toks if t.text.strip()]
    return (body[0].pos, body[-1].end) if body else (0, 0)


def _make(op: str, latex: str, start: int, end: int, new: str) -> Mutant:
    return Mutant(op, latex[:start] + new + latex[end:], start, latex[start:end], new)


def _whole(latex: str, rhs: list[_Tok]) -> Iterator[Mutant]:
    start, end = _span(rhs)
    if end <= start or "\\text{(" in latex[start:end]:
        return  # a right side per variant ("(CE), (L2)"): each variant's own terms are mutated
    body = latex[start:end]
    yield _make("sign", latex, start, end, f"-\\left({body}\\right)")
    yield _make("factor", latex, start, end, f"2\\left({body}\\right)")


def _dropped_terms(latex: str, rhs: list[_Tok]) -> Iterator[Mutant]:
    terms = [t for t in _split_top(rhs, "+-") if any(x.text.strip() not in "+-" for x in t)]
    if len(terms) < 2:
        return
    for i, term in enumerate(terms):
        start, end = _span(term)
        if i == 0 and terms[1][0].text == "+":
            end = terms[1][0].end  # drop "a +", keep the rest's sign
        yield _make("dropped-term", latex, start, end, "")


def _transposes(latex: str, rhs: list[_Tok]) -> Iterator[Mutant]:
    for level in _rhs_levels(latex, rhs):
        for i, t in enumerate(level[:-1]):
            if t.text != "^":
                continue
            nxt = level[i + 1]
            inner = re.sub(r"\\[!,;]|\s", "", nxt.text).strip("{}")
            if inner in ("\\top", "T", "\\intercal", "\\mathsf{T}"):
                yield _make("transpose-dropped", latex, t.pos, nxt.end, "")
        for i, t in enumerate(level):
            if t.node is not None or not t.text.isupper() or not t.text.isalpha():
                continue
            before = [x for x in level[:i] if x.text.strip()]
            if before and (before[-1].text.isalpha() or before[-1].macro in ("lVert", "Vert")):
                continue  # inside a name, or the Frobenius norm, which a transpose leaves alone
            j = i + 1
            if j < len(level) and level[j].text == "_":
                j += 2
            if j <= len(level) and (j == len(level) or level[j].text not in ("^", "'")) \
                    and not (j < len(level) and level[j].text.isalpha()):
                end = level[j - 1].end
                yield _make("transpose-added", latex, end, end, "^\\top")


def _rhs_levels(latex: str, rhs: list[_Tok], *, names: bool = False
                ) -> Iterator[list[_Tok]]:
    """The right side's token sequences, outermost first; ``names``: also inside gradient
    names (where an index or time step says which gradient is read)."""
    level = _without_limits(rhs)
    yield level
    for t in level:
        if (_is_gradient(t) and not names) or t.macro in SKIPPED:
            continue
        for sub in _children(t):
            yield from _rhs_levels(latex, _tokens(sub, latex), names=names)


SKIPPED = ("tag", "mathrm", "operatorname", "text", "label")
LIMITED = ("sum", "prod", "max", "min", "lVert", "rVert", "Vert", "|")


def _without_limits(level: list[_Tok]) -> list[_Tok]:
    """The sequence with the sub- and superscripts of sums and norms (their ranges, the F of
    a Frobenius norm) and their arguments blanked: they are no operand to mutate."""
    out = list(level)
    i = 0
    while i < len(out):
        if out[i].macro in LIMITED or (out[i].node is None and out[i].text == "|"):
            j = i + 1
            while j + 1 < len(out) and out[j].text in ("_", "^"):
                out[j] = out[j + 1] = _Tok(" ", out[j].pos, out[j].pos)
                j += 2
            i = j
        else:
            i += 1
    return out


def _primes(latex: str, rhs: list[_Tok]) -> Iterator[Mutant]:
    for level in _rhs_levels(latex, rhs):
        for i, t in enumerate(level):
            if t.text == "'" and i:
                yield _make("f-for-fprime", latex, t.pos, t.end, "")
            elif t.text == "^" and i + 1 < len(level) and "\\prime" in level[i + 1].text:
                yield _make("f-for-fprime", latex, t.pos, level[i + 1].end, "")
            elif t.macro == "prime":
                yield _make("f-for-fprime", latex, t.pos, t.end, "")


_OFFSET = re.compile(r"^([a-z])([+-]1)$")
_PAIR = re.compile(r"^([a-z])([a-z])$")


def _indices(latex: str, rhs: list[_Tok]) -> Iterator[Mutant]:
    for level in _rhs_levels(latex, rhs, names=True):
        for i, t in enumerate(level[:-1]):
            if t.text != "_":
                continue
            nxt = level[i + 1]
            inner = nxt.text[1:-1].replace(" ", "") if isinstance(nxt.node, LatexGroupNode) \
                else nxt.text
            offset, pair = _OFFSET.match(inner), _PAIR.match(inner)
            if offset and offset.group(1) in TIME_INDICES:
                yield _make("time-offset", latex, nxt.pos, nxt.end, "{" + offset.group(1) + "}")
            elif inner in TIME_INDICES:
                yield _make("time-offset", latex, nxt.pos, nxt.end, "{" + inner + "-1}")
            elif pair and pair.group(1) != pair.group(2):
                yield _make("index-swap", latex, nxt.pos, nxt.end,
                            "{" + pair.group(2) + pair.group(1) + "}")


OPERATORS = (_whole, _dropped_terms, _transposes, _primes, _indices)


def mutants(latex: str) -> list[Mutant]:
    """Every mutant of one equation's right side (the part after its last top-level ``=``), each
    changing one span. An equation without ``=`` has none."""
    rhs = _right_side(latex)
    if not rhs:
        return []
    seen: set[str] = set()
    out = []
    for op in OPERATORS:
        for m in op(latex, rhs):
            if m.latex != latex and m.latex not in seen:
                seen.add(m.latex)
                out.append(m)
    return out


def mutate_page(text: str, latex: str, mutant: Mutant) -> str:
    """The page ``text`` with the one occurrence of the equation source ``latex`` replaced by
    the mutant's. Raises ValueError if ``latex`` is not on the page exactly once."""
    count = text.count(latex)
    if count != 1:
        raise ValueError(f"the equation occurs {count} times on the page, not once: "
                         f"{latex[:60]!r}")
    return text.replace(latex, mutant.latex, 1)
