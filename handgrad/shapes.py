"""Compact shapes and dimension expressions, for the adapters (:mod:`handgrad.adapt`).

Shapes are written once as text, in the order the wrapped function takes its inputs::

    "x: N D, w: D M, b: M"          ->  {"x": ("N", "D"), "w": ("D", "M"), "b": ("M",)}
    "w: 3 D"                         ->  {"w": (3, "D")}       (integer literals are fixed sizes)
    "loss: ()"                       ->  {"loss": ()}           (a scalar)

Dimensions are ranges, fixed sizes or expressions over other dimensions::

    {"N": (1, 3), "H": (4, 8), "HH": (1, 3), "S": 1, "Ho": "(H - HH) // S + 1"}

Expressions are read by a small evaluator (never ``eval``): names of other dimensions, integers,
``+ - * // %``, parentheses, ``min(...)`` and ``max(...)``. Every expression is checked at build
time on the sampled ranges, so no sampled case can give a size below 1.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from handgrad.errors import DerivationError

Shape = tuple[str | int, ...]

_NAME = re.compile(r"[A-Za-z_]\w*\Z")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_FUNCTIONS = {"min": min, "max": max}
# Expressions are checked on every combination of the sampled ranges they read when there are at
# most this many combinations (exact), otherwise on the corners of the ranges.
EXHAUSTIVE_LIMIT = 4096


def _fail(derivation: str, message: str) -> DerivationError:
    return DerivationError(f"derivation {derivation!r}: {message}")


def parse_shape(text: str | Sequence[str | int], *, derivation: str, what: str) -> Shape:
    """One symbolic shape: ``"N D"``, ``"3 D"``, ``"()"`` or ``""`` (a scalar), or a tuple."""
    if not isinstance(text, str):
        shape = tuple(text)
        tokens = [str(t) for t in shape]
    else:
        tokens = text.replace("(", " ").replace(")", " ").replace(",", " ").split()
    out: list[str | int] = []
    for token in tokens:
        if token.isdigit() and int(token) >= 1:
            out.append(int(token))
        elif _NAME.match(token):
            out.append(token)
        else:
            raise _fail(derivation, f"{what}: {token!r} is neither a dimension name nor a "
                        "positive integer; write a derived size as its own dimension, e.g. "
                        "dims={'Ho': 'H - HH + 1'} and the shape 'N F Ho Wo'")
    return tuple(out)


def parse_shapes(spec: str | Mapping[str, str | Sequence[str | int]], *, derivation: str,
                 what: str = "shapes") -> dict[str, Shape]:
    """``"x: N D, w: D M"`` (or a dict of such shapes) -> ``{"x": ("N", "D"), ...}``, in order."""
    if isinstance(spec, Mapping):
        entries = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, str):
        entries = []
        for part in _split_entries(spec):
            if ":" not in part:
                raise _fail(derivation, f"{what} entry {part.strip()!r} has no ':'; write "
                            "'name: dims' entries separated by commas, e.g. 'x: N D, w: D M'")
            key, _, dims = part.partition(":")
            entries.append((key.strip(), dims))
    else:
        raise _fail(derivation, f"{what} must be a string like 'x: N D, w: D M' or a dict, "
                    f"got {type(spec).__name__}")
    out: dict[str, Shape] = {}
    for key, dims in entries:
        if not _NAME.match(key):
            raise _fail(derivation, f"{what}: {key!r} is not a valid input name (a Python "
                        "identifier, as the wrapped function's argument would be)")
        if key in out:
            raise _fail(derivation, f"{what} names {key!r} twice; give each input once")
        out[key] = parse_shape(dims, derivation=derivation, what=f"{what}[{key!r}]")
    if not out and what == "shapes":
        raise _fail(derivation, "shapes is empty: give the symbolic shape of every input, "
                    "e.g. 'x: N D'")
    return out


def _split_entries(spec: str) -> list[str]:
    """Commas separate entries, except inside parentheses (``"s: (), x: N"``)."""
    parts, depth, current = [], 0, []
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


@dataclass(frozen=True)
class Expression:
    """An integer expression over dimension names, e.g. ``(H + 2 * P - HH) // S + 1``."""

    text: str
    names: frozenset[str]
    evaluate: Callable[[Mapping[str, int]], int]

    @classmethod
    def parse(cls, text: str | int, *, derivation: str, what: str) -> Expression:
        if isinstance(text, int) and not isinstance(text, bool):
            return cls(str(text), frozenset(), lambda dims, v=text: v)
        if not isinstance(text, str):
            raise _fail(derivation, f"{what} must be an integer or an expression string, got "
                        f"{type(text).__name__}")
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise _fail(derivation, f"{what} = {text!r} is not a valid expression; use dimension "
                        "names, integers, + - * // %, parentheses, min(...) and max(...)") from None
        names: set[str] = set()
        fn = _compile(tree, names, derivation, f"{what} = {text!r}")
        return cls(text, frozenset(names), fn)


def _compile(node: ast.AST, names: set[str], derivation: str,
             where: str) -> Callable[[Mapping[str, int]], int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) \
            and not isinstance(node.value, bool):
        value = node.value
        return lambda dims: value
    if isinstance(node, ast.Name):
        names.add(node.id)
        key = node.id
        return lambda dims: dims[key]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        op = _OPERATORS[type(node.op)]
        left = _compile(node.left, names, derivation, where)
        right = _compile(node.right, names, derivation, where)
        return lambda dims: op(left(dims), right(dims))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _compile(node.operand, names, derivation, where)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return lambda dims: sign * inner(dims)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in _FUNCTIONS and node.args and not node.keywords:
        fn = _FUNCTIONS[node.func.id]
        args = [_compile(a, names, derivation, where) for a in node.args]
        return lambda dims: fn(a(dims) for a in args)
    hint = ""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        hint = " (sizes are integers: use // for division)"
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        hint = " (write a power as a product: H * H)"
    raise _fail(derivation, f"{where}: {ast.unparse(node)!r} is not allowed{hint}; use "
                "dimension names, integers, + - * // %, parentheses, min(...) and max(...)")


@dataclass(frozen=True)
class Dims:
    """Sampled ranges and derived expressions, in evaluation order."""

    derivation: str
    ranges: dict[str, tuple[int, int]]
    derived: dict[str, Expression]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.ranges) | frozenset(self.derived)

    def complete(self, known: Mapping[str, int]) -> dict[str, int]:
        """``known`` plus every derived dimension computable from it, in dependency order."""
        out = dict(known)
        for name, expr in self.derived.items():
            if name not in out and expr.names <= set(out):
                out[name] = expr.evaluate(out)
        return out

    def derive(self, sampled: Mapping[str, int]) -> dict[str, int]:
        """The record's ``derive``: the derived dimensions of one sampled case."""
        full = self.complete(sampled)
        bad = {k: full[k] for k in self.derived if full[k] < 1}
        if bad:
            raise _fail(self.derivation, f"derived sizes {bad} are below 1 at {dict(sampled)}; "
                        "narrow the ranges in dims")
        return {k: full[k] for k in self.derived}

    def expression(self, text: str | int, what: str) -> Expression:
        """An expression over these dimensions (a label's upper bound, a fan-in), checked."""
        expr = Expression.parse(text, derivation=self.derivation, what=what)
        unknown = sorted(expr.names - self.names)
        if unknown:
            raise _fail(self.derivation, f"{what} = {expr.text!r} uses {unknown}, which "
                        f"{'is not a dimension' if len(unknown) == 1 else 'are not dimensions'}; "
                        f"known: {sorted(self.names)}")
        self._check_positive({what: expr})
        return expr

    def _check_positive(self, exprs: Mapping[str, Expression]) -> None:
        """Each expression (keyed by how the user wrote it, ``dims['Ho']``) is >= 1 on the
        sampled ranges."""
        sampled = sorted(set().union(*(self._roots(e) for e in exprs.values())))
        value_sets = [range(lo, hi + 1) for lo, hi in (self.ranges[k] for k in sampled)]
        total = 1
        for v in value_sets:
            total *= len(v)
        if total > EXHAUSTIVE_LIMIT:
            value_sets = [sorted({v[0], v[-1]}) for v in value_sets]
        for values in itertools.product(*value_sets):
            point = dict(zip(sampled, values))
            full = self.complete(point)
            for name, expr in exprs.items():
                value = expr.evaluate(full)
                if value < 1:
                    shown = ", ".join(f"{k}={v}" for k, v in point.items())
                    raise _fail(self.derivation, f"{name} = {expr.text!r} is {value} "
                                f"at {shown}; narrow the ranges so that every sampled case gives "
                                "a size >= 1")

    def _roots(self, expr: Expression) -> set[str]:
        """The sampled dimensions an expression reads, through other derived ones."""
        roots, todo = set(), list(expr.names)
        while todo:
            name = todo.pop()
            if name in self.ranges:
                roots.add(name)
            elif name in self.derived:
                todo += list(self.derived[name].names)
        return roots


def parse_dims(dims: Mapping[str, tuple[int, int] | int | str], *, derivation: str) -> Dims:
    """``{"N": (1, 3), "S": 1, "Ho": "H - HH + 1"}`` -> ranges and ordered derived expressions."""
    if not isinstance(dims, Mapping) or not dims:
        raise _fail(derivation, "dims must be a non-empty dict: a range (lo, hi), a fixed size "
                    "or an expression string per dimension, e.g. {'N': (1, 4), 'Ho': 'H - K + 1'}")
    ranges: dict[str, tuple[int, int]] = {}
    pending: dict[str, Expression] = {}
    for name, value in dims.items():
        if not _NAME.match(str(name)):
            raise _fail(derivation, f"dims: {name!r} is not a valid dimension name")
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value, value)
        if isinstance(value, str):
            pending[name] = Expression.parse(value, derivation=derivation, what=f"dims[{name!r}]")
        elif isinstance(value, tuple) and len(value) == 2 \
                and all(isinstance(v, int) for v in value) and 1 <= value[0] <= value[1]:
            ranges[name] = value
        else:
            raise _fail(derivation, f"dims[{name!r}] = {value!r}: give an inclusive range "
                        "(lo, hi) with 1 <= lo <= hi, a fixed size, or an expression string")
    known = set(ranges)
    for name, expr in pending.items():
        unknown = sorted(expr.names - known - set(pending))
        if unknown:
            raise _fail(derivation, f"dims[{name!r}] = {expr.text!r} uses {unknown}, which "
                        "has no range; add it to dims, e.g. " + repr({unknown[0]: (1, 4)}))
    ordered: dict[str, Expression] = {}
    while pending:
        ready = [n for n, e in pending.items() if e.names <= known]
        if not ready:
            raise _fail(derivation, f"dims {sorted(pending)} are defined through each other; "
                        "give one of them a range")
        for name in ready:
            ordered[name] = pending.pop(name)
            known.add(name)
    spec = Dims(derivation, ranges, ordered)
    if ordered:
        spec._check_positive({f"dims[{k!r}]": e for k, e in ordered.items()})
    return spec


def check_covered(shapes: Mapping[str, Shape], dims: Dims, what: str = "shapes") -> None:
    """Every dimension named in ``shapes`` has a range or an expression."""
    for key, shape in shapes.items():
        missing = [d for d in shape if isinstance(d, str) and d not in dims.names]
        if missing:
            raise _fail(dims.derivation, f"{what}[{key!r}] uses {missing}, which "
                        f"{'has' if len(missing) == 1 else 'have'} no range in dims; add "
                        + ", ".join(f"{m!r}: (lo, hi)" for m in missing))


def permutation(source: Shape, target: Shape, *, derivation: str, name: str) -> tuple[int, ...]:
    """The axes that take an array of shape ``source`` to the layout ``target``
    (``np.transpose(a, perm)`` / ``t.permute(perm)``); both name the same dimensions. A name
    given twice (a square kernel ``K K``) keeps its order: the first ``K`` goes to the first."""
    if sorted(map(str, source)) != sorted(map(str, target)):
        raise _fail(derivation, f"reference_shapes[{name!r}] = {target} does not hold the same "
                    f"dimensions as the shape {source}; give the same names in the "
                    "reference's order, e.g. 'x: N C H W' for 'x: N H W C'")
    unused = list(range(len(source)))
    perm = []
    for d in target:
        axis = next(i for i in unused if source[i] == d)
        unused.remove(axis)
        perm.append(axis)
    return tuple(perm)
