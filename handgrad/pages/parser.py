"""The math of one display equation -> an expression tree, with the lark grammar in
``grammar.lark``. The grammar gives a flat chain of factors and product operators per term; this
module gives the chain its precedence: juxtaposition binds tighter than ``\\odot``, ``\\oslash``,
``\\cdot``, ``\\star`` and ``/``; a big operator (``\\sum``, ``\\max``) and a function written
without parentheses (``\\log \\hat y``) take the rest of their term.

Nodes are frozen dataclasses; :func:`parse` raises :class:`ParseError` naming the construct
where the text is outside the grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import lark

GRAMMAR = Path(__file__).with_name("grammar.lark")


class ParseError(ValueError):
    """The equation's text is outside the page language."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    """An atom by its LaTeX spelling: ``x``, ``\\lambda``, ``\\hat y``, ``\\mathbf 1``,
    ``\\mathrm{softmax}``, ``\\mathcal T``."""

    text: str


@dataclass(frozen=True)
class Scripted:
    """``base_{sub}^{sup}`` with primes: ``sub`` is a tuple of comma-separated items, ``sup`` a
    node or None (``\\top`` is ``Name('\\top')``)."""

    base: object
    sub: tuple | None = None
    sup: object = None
    primes: int = 0


@dataclass(frozen=True)
class Frac:
    num: object
    den: object


@dataclass(frozen=True)
class Partial:
    """``\\partial v`` inside a fraction."""

    of: object


@dataclass(frozen=True)
class Group:
    """Parentheses (a tuple of comma-separated items: one for a grouping)."""

    items: tuple


@dataclass(frozen=True)
class Wrap:
    """A one-argument bracket: ``kind`` is ``iverson``, ``norm``, ``floor``, ``sqrt``,
    ``set``, ``concat`` (``[a \\mid b]``), ``text``."""

    kind: str
    body: object


@dataclass(frozen=True)
class Op:
    """A binary operator: ``+ - \\odot \\oslash \\cdot \\star \\tilde\\star / juxt``."""

    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Neg:
    body: object


@dataclass(frozen=True)
class Apply:
    fn: object
    arg: object


@dataclass(frozen=True)
class BigOp:
    """``\\sum_{sub}^{sup} body`` (also ``\\max``, ``\\min``, ``\\prod``)."""

    kind: str
    sub: tuple | None
    sup: object
    body: object


@dataclass(frozen=True)
class Relation:
    """``a = b`` (chains ``a = b = c``); ``rels`` are the relation symbols between parts."""

    parts: tuple
    rels: tuple


@dataclass(frozen=True)
class Condition:
    """``p : P`` in a subscript (a sum over the ``p`` where ``P`` holds)."""

    var: object
    test: object


# Functions of the page language: a head with one of these bases is applied to what follows.
FUNCTIONS = frozenset({
    "\\sigma", "\\tanh", "\\log", "\\exp", "\\mathrm{relu}", "\\mathrm{softmax}",
    "\\mathrm{diag}", "\\mathrm{rot180}", "\\mathrm{MeanPool}", "\\mathrm{sum}", "f",
    "\\mathrm{id}", "\\mathrm{tr}", "\\sin", "\\cos", "\\ln"})


def is_function(node) -> bool:
    """A function head: a known function name, with primes, a power or (for ``f``) a digit
    subscript (``f_1``): ``f_t`` is the LSTM's forget gate, a symbol."""
    if isinstance(node, Scripted):
        if not isinstance(node.base, Name) or node.base.text not in FUNCTIONS:
            return False
        if node.sub is None:
            return True
        if node.base.text == "\\mathrm{MeanPool}":
            return True
        return (len(node.sub) == 1 and isinstance(node.sub[0], Num)
                and float(node.sub[0].value).is_integer())
    return isinstance(node, Name) and node.text in FUNCTIONS


class _Builder(lark.Transformer):
    """Lark tree -> nodes, chains left flat (``('chain', sign, links)``)."""

    def start(self, c):
        return c[0] if len(c) == 1 else tuple(c)

    def relation(self, c):
        if len(c) == 1:
            return c[0]
        return Relation(tuple(c[0::2]), tuple(str(t) for t in c[1::2]))

    def add(self, c):
        return Op("+", c[0], c[2])

    def sub(self, c):
        return Op("-", c[0], c[2])

    def sign(self, c):
        return str(c[0])

    def chain(self, c):
        sign = c[0] if c and isinstance(c[0], str) and c[0] in "+-" else None
        links = c[1:] if sign else c
        return structure(sign, list(links))

    def factor(self, c):
        base, posts = c[0], c[1:]
        sub, sup, primes = None, None, 0
        for kind, value in posts:
            if kind == "prime":
                primes += 1
            elif kind == "sub":
                if sub is not None:
                    raise ParseError("a double subscript")
                sub = value
            else:
                if sup is not None:
                    base, sub, primes = Scripted(base, sub, sup, primes), None, 0
                sup = value
        if sub is None and sup is None and not primes:
            return base
        return Scripted(base, sub, sup, primes)

    def sub_script(self, c):
        return ("sub", c[0] if isinstance(c[0], tuple) else (c[0],))

    def sup_script(self, c):
        value = c[0]
        if isinstance(value, tuple):
            value = value[0] if len(value) == 1 else Group(value)
        return ("sup", value)

    def prime(self, c):
        return ("prime", None)

    def group_script(self, c):
        return c[0]

    def empty_script(self, c):
        return ()

    def letter_script(self, c):
        return Name(str(c[0]))

    def digit_script(self, c):
        return Num(float(c[0]))

    def macro_script(self, c):
        return Name(str(c[0]))

    def bigop(self, c):
        return ("bigop", str(c[0]), list(c[1:]))

    def fontword(self, c):
        text = str(c[0])
        font, word = text[:text.index("{")], text[text.index("{") + 1:-1]
        if font == "\\operatorname":
            font = "\\mathrm"
        return Name(f"{font} {word}" if len(word) == 1 else f"{font}{{{word}}}")

    def sublist(self, c):
        return tuple(c)

    def subitem(self, c):
        return c[0]

    def condition(self, c):
        return Condition(c[0], c[1])

    def letter(self, c):
        return Name(str(c[0]))

    def number(self, c):
        return Num(float(c[0]))

    def macro(self, c):
        text = str(c[0])
        if text == "\\partial":
            return Name("\\partial")
        return Name(text)

    def accent(self, c):
        return _accent(str(c[0]), c[1])

    def font(self, c):
        body = c[1]
        font = str(c[0])
        if font == "\\operatorname":
            font = "\\mathrm"
        if isinstance(body, Num):
            return Name(f"{font} {_number(body)}")
        if isinstance(body, Name) and len(body.text) == 1:
            return Name(f"{font} {body.text}")
        if isinstance(body, Name | Op):
            return Name(f"{font}{{{_spell(body)}}}")
        raise ParseError(f"{font} of a compound expression")

    def text(self, c):
        body = str(c[0])
        return Wrap("text", body[body.index("{") + 1:-1])

    def frac(self, c):
        return Frac(c[1], c[2])

    def sqrt(self, c):
        return Wrap("sqrt", c[1])

    def brace(self, c):
        return c[0]

    def empty(self, c):
        return Group(())

    def paren(self, c):
        return Group(tuple(c[1]))

    def bracket(self, c):
        return Wrap("iverson", c[1])

    def concat(self, c):
        return Wrap("concat", tuple(x for x in c[1:-1] if not isinstance(x, lark.Token)))

    def setbrace(self, c):
        return Wrap("set", c[1])

    def norm(self, c):
        return Wrap("norm", c[1])

    def floor(self, c):
        return Wrap("floor", c[1])



def _number(n: Num) -> str:
    return str(int(n.value)) if float(n.value).is_integer() else str(n.value)


def _accent(accent: str, body) -> Name:
    if isinstance(body, Name):
        return Name(f"{accent} {body.text}" if len(body.text) == 1 or body.text.startswith("\\")
                    and " " not in body.text else f"{accent}{{{body.text}}}")
    raise ParseError(f"{accent} over a compound expression")


def _spell(node) -> str:
    """A canonical LaTeX spelling of a small node (names, numbers, scripts), for symbol keys."""
    if isinstance(node, Name):
        return node.text
    if isinstance(node, Num):
        return _number(node)
    if isinstance(node, Scripted):
        text = _spell(node.base)
        if node.sub is not None:
            text += "_{" + ",".join(_spell(s) for s in node.sub) + "}"
        if node.sup is not None:
            text += "^{" + _spell(node.sup) + "}"
        return text + "'" * node.primes
    if isinstance(node, Group):
        return "(" + ",".join(_spell(s) for s in node.items) + ")"
    if isinstance(node, Frac):
        return f"\\frac{{{_spell(node.num)}}}{{{_spell(node.den)}}}"
    if isinstance(node, Op):
        if node.op == "juxt":
            left = _spell(node.left)
            gap = " " if left[-1:].isalpha() and left.startswith("\\") else ""
            return f"{left}{gap}{_spell(node.right)}"
        return f"{_spell(node.left)}{node.op}{_spell(node.right)}"
    if isinstance(node, Neg):
        return "-" + _spell(node.body)
    if isinstance(node, Wrap) and node.kind == "iverson":  # a layer's W^{[1]}
        return "[" + _spell(node.body) + "]"
    return type(node).__name__


spell = _spell


def structure(sign: str | None, links: list):
    """A flat chain -> a tree: juxtaposition first, then the product operators left to right; a
    big operator or a bare function takes the rest of the chain as its body."""
    terms: list = []
    ops: list[str] = []
    current: list = []
    i = 0
    while i < len(links):
        link = links[i]
        if isinstance(link, lark.Token) and link.type == "EOP":
            if not current:
                raise ParseError(f"{link} with nothing before it")
            terms.append(_juxt(current))
            ops.append(str(link).replace("\\,", "").strip())
            current = []
        elif isinstance(link, tuple) and link and link[0] == "bigop":
            _, kind, scripts = link
            sub, sup = None, None
            for script, value in scripts:
                if script == "sub":
                    sub = value
                elif script == "sup":
                    sup = value
            rest = links[i + 1:]
            if not rest:
                raise ParseError(f"{kind} with nothing to apply to")
            current.append(BigOp(kind[1:], sub, sup, structure(None, rest)))
            i = len(links)
            continue
        elif is_function(link):
            nxt = links[i + 1] if i + 1 < len(links) else None
            if isinstance(nxt, Group) and len(nxt.items) == 1:
                current.append(Apply(link, nxt.items[0]))
                i += 2
                continue
            if isinstance(nxt, Scripted) and isinstance(nxt.base, Group) \
                    and len(nxt.base.items) == 1:
                current.append(Scripted(Apply(link, nxt.base.items[0]), nxt.sub, nxt.sup,
                                        nxt.primes))
                i += 2
                continue
            rest = links[i + 1:]
            if _bare(link):
                if not rest:
                    raise ParseError(f"the function {spell(link)} with no argument")
                current.append(Apply(link, structure(None, rest)))
                i = len(links)
                continue
            current.append(link)  # f_1 without parentheses: a symbol (the LSTM's forget gate)
        else:
            current.append(link)
        i += 1
    if not current:
        raise ParseError("an operator with nothing after it")
    terms.append(_juxt(current))
    tree = terms[0]
    for op, term in zip(ops, terms[1:]):
        tree = Op(op, tree, term)
    return Neg(tree) if sign == "-" else tree


# Functions written without parentheses, which take the rest of their term: \log \hat y.
BARE = frozenset({"\\log", "\\ln", "\\exp"})


def _bare(head) -> bool:
    base = head.base if isinstance(head, Scripted) else head
    return isinstance(base, Name) and base.text in BARE


def _juxt(factors: list):
    tree = factors[0]
    for f in factors[1:]:
        tree = Op("juxt", tree, f)
    return tree


@cache
def _parser() -> lark.Lark:
    return lark.Lark(GRAMMAR.read_text(), parser="lalr", transformer=_Builder(),
                     maybe_placeholders=False)


@cache
def parse(text: str):
    """The tree of one equation (or expression), cached (trees are immutable). Raises
    :class:`ParseError` naming what the grammar did not accept."""
    try:
        return _parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        context = exc.get_context(text, 20).splitlines()[0].strip()
        raise ParseError(f"outside the grammar near {context!r}") from None
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, ParseError):
            raise exc.orig_exc from None
        raise
