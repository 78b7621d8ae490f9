"""Each tagged equation of a page judged on one case: the right side evaluated, the left side
bound to autograd's gradient or the reference's value, compared with the autograd tolerances
and diagnosed like code (sign, factor, transposed, offset, slices, values...)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handgrad.compare import compare
from handgrad.diagnose import diagnose
from handgrad.pages import values as V
from handgrad.pages.bind import (
    OtherVariantError,
    Sym,
    Values,
    World,
    canonical,
    reference_values,
)
from handgrad.pages.evaluate import Evaluator
from handgrad.pages.loader import Equation, Page, load_page
from handgrad.pages.parser import ParseError, Relation, Wrap, parse, spell
from handgrad.pages.values import NotCheckableError, ShapeError, Val
from handgrad.tolerances import tolerance

STATUSES = ("pass", "fail", "not-checkable", "skipped")


@dataclass(frozen=True)
class EquationResult:
    """The verdict on one tagged equation in one case.

    ``status``: ``pass``, ``fail`` (``kind`` from :mod:`handgrad.diagnose`, or ``shape`` when
    the right side does not type-check), ``not-checkable`` (``message`` names the construct
    outside the language) or ``skipped`` (the equation is another variant's, or the record
    does not list it). ``lhs`` is the left side as written."""

    tag: str
    status: str
    lhs: str = ""
    kind: str = ""
    message: str = ""
    line: int = 0
    cell: int | None = None
    max_abs: float = math.nan
    max_rel: float = math.nan
    worst_index: tuple[int, ...] = ()
    page_value: float = math.nan
    ref_value: float = math.nan
    rtol: float = math.nan
    atol: float = math.nan
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "skipped")


def page_of(record) -> Page | None:
    """The record's page: its ``page`` field, else its ``doc``; None when it has neither."""
    path = getattr(record, "page", "") or record.doc
    if not path:
        return None
    return load_page(_locate(path, record))


def _locate(path: str, record) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    if record.origin:
        near = Path(record.origin).parent / p.name
        if near.exists():
            return near
    return p


def check_page(record, case, page: Page | None = None, *, inputs: Mapping | None = None,
               dout: np.ndarray | None = None, values: Values | None = None
               ) -> list[EquationResult]:
    """Every tagged equation of ``page`` (default: the record's) judged on ``case`` (float64).

    ``inputs`` and ``dout`` default to the case's (as the record's check builds them);
    ``values`` to one run of the reference on them (:func:`reference_values`)."""
    from handgrad.cases import build_inputs, full_dims, upstream

    page = page or page_of(record)
    if page is None:
        return []
    dims = full_dims(record, case.dim_map)
    if values is None:
        if inputs is None:
            inputs = build_inputs(record, case, "float64")
        if dout is None:
            dout = upstream(_output_shape(record, inputs), case)
        values = reference_values(record, inputs, dout)
    world = World(page, record, values, dims)
    _bind_loss(world, values)
    wanted = getattr(record, "equations", None)
    tol = tolerance("float64", "autograd", record.tolerances)
    results = []
    for eq in page.equations:
        if wanted is not None and eq.tag not in wanted:
            results.append(EquationResult(eq.tag, "skipped", line=eq.line, cell=eq.cell,
                                          message="not among the equations the record "
                                                  "follows (its equations field)"))
            continue
        results.append(judge(eq, world, tol, dims))
    return results


def _output_shape(record, inputs) -> tuple[int, ...]:
    if record.forward is not None:
        out, _ = record.forward(**{k: np.array(v, copy=True) for k, v in inputs.items()})
        return np.shape(out)
    from handgrad.autograd import to_tensors

    out = record.reference(**to_tensors(record, inputs, "float64"))
    return tuple((out[0] if isinstance(out, tuple) else out).shape)


def _bind_loss(world: World, values: Values) -> None:
    """``L`` is a scalar output; a layer's output ``O`` (notation.md) has the upstream
    gradient as its gradient."""
    if "L" not in world.syms and np.ndim(values.out) == 0:
        world.syms["L"] = Sym("L", np.asarray(values.out), None)
    for latex, name in (getattr(world.record, "symbols", None) or {}).items():
        if name == "L" and "L" in world.syms:  # the page's own letter for the loss
            world.syms.setdefault(canonical(latex), world.syms["L"])
    if "O" not in world.syms and "(output)" in values.value:
        world.syms["O"] = Sym("O", values.value["(output)"], values.grad.get("(output)"))


def judge(eq: Equation, world: World, tol: Mapping[str, float], dims) -> EquationResult:
    where = {"line": eq.line, "cell": eq.cell}
    try:
        tree = parse(eq.text)
    except ParseError as exc:
        return EquationResult(eq.tag, "not-checkable", message=f"not parsed: {exc}", **where)
    parts = tree if isinstance(tree, tuple) else (tree,)
    conditions = tuple(p for p in parts if _is_condition(p))
    parts = tuple(p for p in parts if not _is_condition(p))
    lhs_node, verdicts, skipped = None, [], 0
    for part in parts:
        if isinstance(part, Relation):
            if part.rels[0] != "=" or any(r != "=" for r in part.rels):
                return EquationResult(eq.tag, "not-checkable", lhs=spell(part.parts[0]),
                                      message=f"the relation {part.rels[0]} (only = is "
                                              "checked)", **where)
            lhs_node, rights = part.parts[0], part.parts[1:]
        elif lhs_node is not None:
            rights = (part,)
        else:
            return EquationResult(eq.tag, "not-checkable",
                                  message="an expression without a left side", **where)
        for right in rights:
            verdict = _one(eq, world, lhs_node, right, tol, dims, conditions)
            if verdict is None:
                skipped += 1
                continue
            verdicts.append(verdict)
    if not verdicts:
        return EquationResult(eq.tag, "skipped", lhs=spell(lhs_node) if lhs_node else "",
                              message="every part of the equation is another variant's",
                              **where)
    for v in verdicts:
        if v.status != "pass":
            return v
    return verdicts[0]


CONDITIONS = ("<", ">", "\\le", "\\ge", "\\leq", "\\geq", "\\ne", "\\neq")


def _is_condition(part) -> bool:
    """``k < t`` beside an equation: where it holds (a recursion's range)."""
    return isinstance(part, Relation) and len(part.rels) == 1 and part.rels[0] in CONDITIONS


def _one(eq: Equation, world: World, lhs_node, rhs_node, tol, dims,
         conditions=()) -> EquationResult | None:
    where = {"line": eq.line, "cell": eq.cell, "lhs": spell(lhs_node)}
    ev = Evaluator(world)
    try:
        for label in _variant_labels(rhs_node):
            world.require_variant(label)
        lhs = ev.value(lhs_node)
    except OtherVariantError:
        return None
    except NotCheckableError as exc:
        return EquationResult(eq.tag, "not-checkable", message=f"the left side: {exc}", **where)
    except ShapeError as exc:
        return EquationResult(eq.tag, "not-checkable", message=f"the left side: {exc}",
                              **where)
    try:
        rhs = ev.value(rhs_node)
        page, ref = align(rhs, lhs)
        for condition in conditions:
            mask, _ = align(ev.iverson(condition), lhs, broadcast=True)
            page, ref = page * mask, ref * mask
    except OtherVariantError:
        return None
    except NotCheckableError as exc:
        return EquationResult(eq.tag, "not-checkable", message=str(exc), **where)
    except ShapeError as exc:
        return EquationResult(eq.tag, "fail", kind="shape", message=str(exc), **where)
    same = np.isinf(page) & (page == ref)  # -inf at a masked score on both sides
    page, ref = np.where(same, 0.0, page), np.where(same, 0.0, ref)
    # atol scales with the largest quantity the equation combines, not only with its result:
    # a loss of exactly 0 (one class) evaluated as log-sum-exp minus a logit rounds to 1e-17.
    scale = max(float(np.abs(ref).max(initial=0.0)), ev.largest)
    c = compare(page, ref, tol["rtol"], tol["atol"], scale=scale)
    if c.passed:
        return EquationResult(eq.tag, "pass", max_abs=c.max_abs, max_rel=c.max_rel,
                              rtol=c.rtol, atol=c.atol, **where)
    kind, message = diagnose(page, ref, tol["rtol"], tol["atol"], dims, None)
    return EquationResult(eq.tag, "fail", kind=kind, message=message, max_abs=c.max_abs,
                          max_rel=c.max_rel, worst_index=c.worst_index,
                          page_value=c.hand_value, ref_value=c.ref_value, rtol=c.rtol,
                          atol=c.atol, **where)


def _variant_labels(node) -> list[str]:
    """The ``\\text{(CE)}`` labels inside a node: the variant a right side is written for."""
    if isinstance(node, Wrap) and node.kind == "text":
        return [node.body]
    if isinstance(node, tuple):
        return [x for n in node for x in _variant_labels(n)]
    if hasattr(node, "__dataclass_fields__"):
        return [x for f in node.__dataclass_fields__ for x in _variant_labels(getattr(node, f))]
    return []


def align(rhs: Val, lhs: Val, broadcast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(right side, left side) as arrays of the left side's layout. The hidden sample axis
    of a one-sample page sums where the left side has none (a parameter's gradient is the
    sum of the samples'); the right side broadcasts over a free index it does not carry."""
    if V.SAMPLE in rhs.named and V.SAMPLE not in lhs.named:
        rhs = V.sum_over(rhs, V.SAMPLE)
    extra = [n for n in rhs.named if n not in lhs.named]
    if extra:
        raise ShapeError(f"the right side carries the free index {', '.join(extra)}, the left "
                         f"side {lhs.describe()} does not")
    target = lhs.data.shape
    k = len(lhs.named)
    data = np.asarray(rhs.data, np.float64)
    expanded = V._expand(rhs, lhs.named, len(rhs.pos))
    pos_r, pos_l = rhs.pos, lhs.pos
    if pos_r != pos_l:
        if len(pos_r) == 0 and (len(pos_l) == 0 or broadcast):
            expanded = expanded.reshape(expanded.shape + (1,) * len(pos_l))
        elif sorted(d for d in pos_r if d != 1) == sorted(d for d in pos_l if d != 1) \
                and int(np.prod(pos_r)) == int(np.prod(pos_l)) and \
                (len(pos_r) <= 1 or len(pos_l) <= 1) and max(len(pos_r), len(pos_l)) <= 2:
            expanded = expanded.reshape(expanded.shape[:k] + pos_l)  # a row or column vector
        elif len(pos_r) == len(pos_l) and all(a == b or (a == 1 and i in rhs.ones)
                                             for i, (a, b) in enumerate(zip(pos_r, pos_l))):
            pass  # a stretchable ones axis
        else:
            raise ShapeError(f"the right side is {rhs.describe()}, the left side "
                             f"{lhs.describe()}")
    try:
        data = np.broadcast_to(expanded, target)
    except ValueError:
        raise ShapeError(f"the right side is {rhs.describe()}, the left side "
                         f"{lhs.describe()}") from None
    return np.array(data), np.asarray(lhs.data, np.float64)
