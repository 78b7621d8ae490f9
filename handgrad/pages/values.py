"""Values of the page language: an array whose leading axes are named by index letters (index
notation, einsum semantics) and whose trailing axes are positional (matrix form: products,
transposes, column and row vectors). Shape errors raise :class:`ShapeError` with the shapes met.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE = "§"  # the hidden axis of a page written for one sample, evaluated batch-wide


class ShapeError(ValueError):
    """The right side does not type-check: shapes that do not multiply, a missing axis."""


class NotCheckableError(ValueError):
    """The construct is outside the language the evaluator understands (named in the text)."""


@dataclass(frozen=True)
class Val:
    """``data``: the named axes (``named``, in order) then the positional ones. ``orient`` tells
    a 1-D positional value's orientation (``col`` by default, ``row`` after a transpose);
    ``ones`` the positional axes that are a stretchable column or row of ones (size 1)."""

    data: np.ndarray
    named: tuple[str, ...] = ()
    orient: str = "col"
    ones: frozenset[int] = field(default_factory=frozenset)

    @property
    def pos(self) -> tuple[int, ...]:
        return self.data.shape[len(self.named):]

    def describe(self) -> str:
        parts = [f"{n}:{s}" for n, s in zip(self.named, self.data.shape)]
        pos = self.pos
        text = f"({pos[0]}) {self.orient}" if len(pos) == 1 else str(pos)
        return f"{text}" + (f" over {', '.join(parts)}" if parts else "")


def scalar(x: float) -> Val:
    return Val(np.asarray(float(x)))


def ones() -> Val:
    return Val(np.ones(1), (), "col", frozenset({0}))


def _expand(v: Val, order: tuple[str, ...], rank: int) -> np.ndarray:
    """v.data with its named axes in ``order`` (size 1 where absent) and ``rank`` positional axes
    (size-1 axes added in front of its own)."""
    perm = [v.named.index(n) for n in order if n in v.named]
    k = len(v.named)
    data = np.transpose(v.data, perm + list(range(k, v.data.ndim)))
    shape = []
    it = iter(data.shape[:k])
    for n in order:
        shape.append(next(it) if n in v.named else 1)
    pos = data.shape[k:]
    return data.reshape(tuple(shape) + (1,) * (rank - len(pos)) + pos)


def union(a: Val, b: Val) -> tuple[str, ...]:
    order = a.named + tuple(n for n in b.named if n not in a.named)
    for n in set(a.named) & set(b.named):
        sa, sb = a.data.shape[a.named.index(n)], b.data.shape[b.named.index(n)]
        if sa != sb:
            raise ShapeError(f"index {n} runs over {sa} values on one side and {sb} on the other")
    return order


def elementwise(op: str, a: Val, b: Val, fn) -> Val:
    """``a op b`` entry by entry: equal positional shapes, a scalar, a stretchable ones axis,
    or a vector of a matrix's row length (added to every row)."""
    pa, pb = a.pos, b.pos
    ones_axes: set[int] = set()
    if len(pa) == 0 or len(pb) == 0:
        rank = max(len(pa), len(pb))
        src = a if len(pa) else b
        orient, ones_axes = src.orient, set(src.ones)
    elif len(pa) == len(pb):
        for i, (x, y) in enumerate(zip(pa, pb)):
            if x != y and not ((x == 1 and i in a.ones) or (y == 1 and i in b.ones)):
                raise ShapeError(f"{op} of shapes {a.describe()} and {b.describe()}")
            if (i in a.ones or x == 1) and (i in b.ones or y == 1) and x == y == 1 \
                    and (i in a.ones and i in b.ones):
                ones_axes.add(i)
        rank = len(pa)
        orient = a.orient
        if rank == 1 and a.orient != b.orient and pa[0] > 1 and 0 not in a.ones | b.ones:
            raise ShapeError(f"{op} of a column and a row vector: {a.describe()} and "
                             f"{b.describe()}")
    elif len(pa) == 1 and len(pb) == 2 and pa[0] == pb[1] and 0 not in a.ones:
        rank, orient = 2, b.orient
    elif len(pb) == 1 and len(pa) == 2 and pb[0] == pa[1] and 0 not in b.ones:
        rank, orient = 2, a.orient
    else:
        raise ShapeError(f"{op} of shapes {a.describe()} and {b.describe()}")
    order = union(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        data = fn(_expand(a, order, rank), _expand(b, order, rank))
    return Val(np.asarray(data, dtype=np.float64), order, orient, frozenset(ones_axes))


def unary(a: Val, fn) -> Val:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return Val(np.asarray(fn(a.data), dtype=np.float64), a.named, a.orient, a.ones)


def transpose(a: Val) -> Val:
    pos = a.pos
    if len(pos) == 0:
        return a
    if len(pos) == 1:
        return Val(a.data, a.named, "row" if a.orient == "col" else "col", a.ones)
    if len(pos) == 2:
        k = len(a.named)
        perm = list(range(k)) + [k + 1, k]
        return Val(np.transpose(a.data, perm), a.named, a.orient,
                   frozenset({1 - i for i in a.ones}))
    raise ShapeError(f"transpose of a {len(pos)}-D array {a.describe()}")


def _as_matrix(v: Val) -> tuple[np.ndarray, set[int]]:
    """(data with 2 positional axes, the ones axes of those two)."""
    k = len(v.named)
    if len(v.pos) == 1:
        if v.orient == "col":
            return v.data[..., :, None], {0} if 0 in v.ones else set()
        return v.data[..., None, :], {1} if 0 in v.ones else set()
    if len(v.pos) == 2:
        return v.data, set(v.ones)
    raise ShapeError(f"matrix product with a {len(v.pos)}-D array {v.describe()}"
                     if k >= 0 else "")


def product(a: Val, b: Val) -> Val:
    """Juxtaposition: scaling by a scalar, else the matrix product (vectors are columns, or rows
    once transposed)."""
    if len(a.pos) == 0 or len(b.pos) == 0:
        return elementwise("product", a, b, np.multiply)
    ma, oa = _as_matrix(a)
    mb, ob = _as_matrix(b)
    ka, kb = ma.shape[-1], mb.shape[-2]
    if 1 in oa and 0 in ob:
        raise NotCheckableError("a product of two columns of ones of unknown length")
    if 1 in oa:
        mb = mb.sum(axis=-2, keepdims=True)
        ma = ma[..., :, :1]
    elif 0 in ob:
        ma = ma.sum(axis=-1, keepdims=True)
        mb = mb[..., :1, :]
    elif ka != kb:
        raise ShapeError(f"product of shapes {a.describe()} and {b.describe()}")
    order = union(a, b)
    xa = _expand(Val(ma, a.named), order, 2)
    xb = _expand(Val(mb, b.named), order, 2)
    data = np.matmul(xa, xb)
    drop_rows = len(a.pos) == 1 and a.orient == "row"
    drop_cols = len(b.pos) == 1 and b.orient == "col"
    ones_axes = ({0} if 0 in oa else set()) | ({1} if 1 in ob else set())
    if drop_rows and drop_cols:
        return Val(data[..., 0, 0], order)
    if drop_cols:
        return Val(data[..., 0], order, "col", frozenset({0} if 0 in ones_axes else ()))
    if drop_rows:
        return Val(data[..., 0, :], order, "row", frozenset({0} if 1 in ones_axes else ()))
    if len(a.pos) == 1 and len(b.pos) == 1:
        pass  # an outer product: a matrix
    return Val(data, order, "col", frozenset(ones_axes))


def sum_over(v: Val, name: str) -> Val:
    if name not in v.named:
        raise ShapeError(f"a sum over {name}, an index the summand {v.describe()} does not "
                         "carry")
    i = v.named.index(name)
    return Val(v.data.sum(axis=i), v.named[:i] + v.named[i + 1:], v.orient, v.ones)


def sum_all(v: Val) -> Val:
    """The sum of every positional entry (``\\mathrm{sum}``, a norm's squares)."""
    k = len(v.named)
    return Val(v.data.sum(axis=tuple(range(k, v.data.ndim))), v.named)


def reduce_named(v: Val, name: str, fn) -> Val:
    if name not in v.named:
        raise ShapeError(f"a reduction over {name}, an index {v.describe()} does not carry")
    i = v.named.index(name)
    return Val(fn(v.data, axis=i), v.named[:i] + v.named[i + 1:], v.orient, v.ones)


def select(v: Val, axis: int, index: Val, base: int) -> Val:
    """Positional axis ``axis`` of v indexed by ``index`` (an integer-valued value over named
    axes): the entry at position ``index - base`` (zero where that is outside the axis, the
    rule of a recursion's step beyond the last)."""
    if len(index.pos):
        raise ShapeError(f"an index that is not a number: {index.describe()}")
    k = len(v.named)
    n = v.data.shape[k + axis]
    positions = np.arange(n) + base
    onehot = Val((index.data[..., None] == positions).astype(np.float64), index.named)
    moved = np.moveaxis(v.data, k + axis, -1)
    rest = moved.shape[k:-1]
    order = union(Val(moved, v.named), Val(onehot.data, index.named))
    xa = _expand(Val(moved, v.named), order, len(rest) + 1)
    xo = _expand(Val(onehot.data, index.named), order, 1)
    xo = xo.reshape(xo.shape[:len(order)] + (1,) * len(rest) + xo.shape[-1:])
    data = np.where(xo != 0, xa, 0.0).sum(axis=-1)  # -inf at a masked entry times 0 is 0
    orient = v.orient
    if len(rest) == 1 and len(v.pos) == 2:
        orient = "col"  # a row or column of a matrix is a vector, columns by convention
    ones_axes = frozenset(i - (i > axis) for i in v.ones if i != axis)
    return Val(data, order, orient, ones_axes)


def name_axis(v: Val, axis: int, letter: str) -> Val:
    """Positional axis ``axis`` becomes the named axis ``letter`` (plain index notation)."""
    k = len(v.named)
    if letter in v.named:
        raise NotCheckableError(f"index {letter} used twice on one symbol (a diagonal)")
    data = np.moveaxis(v.data, k + axis, 0)
    orient = "col" if len(v.pos) == 2 else v.orient
    return Val(data, (letter, *v.named), orient,
               frozenset(i - (i > axis) for i in v.ones if i != axis))


def letter_values(letter: str, size: int, base: int) -> Val:
    return Val(np.arange(size, dtype=np.float64) + base, (letter,))


def to_layout(v: Val, named: tuple[str, ...]) -> np.ndarray:
    """v's data with its named axes in ``named`` order (each must be present)."""
    k = len(v.named)
    perm = [v.named.index(n) for n in named]
    return np.transpose(v.data, perm + list(range(k, v.data.ndim)))
