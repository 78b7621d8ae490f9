"""One parsed equation evaluated with NumPy on the values a :class:`~handgrad.pages.bind.World`
binds: the right side from the forward's values and autograd's gradients, the left side as the
value (or gradient) it names. The language is ``derivations/notation.md``'s section *What the
evaluator understands*; anything else raises :class:`NotCheckableError` naming the construct."""

from __future__ import annotations

import numpy as np

from handgrad.pages import values as V
from handgrad.pages.parser import (
    Apply,
    BigOp,
    Condition,
    Frac,
    Group,
    Name,
    Neg,
    Num,
    Op,
    Relation,
    Scripted,
    Wrap,
    spell,
)
from handgrad.pages.values import NotCheckableError, ShapeError, Val

GREEK_INDEX = {"\\tau"}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# name -> derivatives 0, 1, 2 of the activation, as functions of the pre-activation
ACTIVATIONS = {
    "sigmoid": (_sigmoid, lambda a: _sigmoid(a) * (1 - _sigmoid(a)),
                lambda a: _sigmoid(a) * (1 - _sigmoid(a)) * (1 - 2 * _sigmoid(a))),
    "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2,
             lambda a: -2 * np.tanh(a) * (1 - np.tanh(a) ** 2)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(np.float64),
             lambda a: np.zeros_like(a)),
    "identity": (lambda a: a, np.ones_like, np.zeros_like),
}
NAMED_ACTIVATIONS = {"\\sigma": "sigmoid", "\\tanh": "tanh", "\\mathrm{relu}": "relu",
                     "\\mathrm{id}": "identity"}
RELATIONS = {"=": np.equal, "<": np.less, ">": np.greater, "\\le": np.less_equal,
             "\\leq": np.less_equal, "\\ge": np.greater_equal, "\\geq": np.greater_equal,
             "\\ne": np.not_equal, "\\neq": np.not_equal}


class Evaluator:
    """Evaluates the nodes of one equation on one world. ``letters`` holds each index letter's
    (size, first value) once an array axis has given it."""

    def __init__(self, world):
        self.world = world
        self.letters: dict[str, tuple[int, int]] = {}
        self.bound: set[str] = set()  # letters bound by a sum being evaluated
        # the largest finite magnitude of any value the evaluation met: the page combines its
        # terms in another order than the reference, so it rounds at that level
        self.largest = 0.0

    def equation(self, tree) -> tuple[Val, Val, object]:
        """(left value, right value, the left node) of ``lhs = rhs``; a chain ``a = b = c``
        gives the last part as the right side (every part is checked by :meth:`parts`)."""
        if not isinstance(tree, Relation) or tree.rels[0] != "=":
            raise NotCheckableError("an equation that is not of the form left = right")
        return self.value(tree.parts[0]), self.value(tree.parts[-1]), tree.parts[0]

    def value(self, node) -> Val:
        try:
            return self._value(node)
        except NeedSizeError:
            return self._value(node)  # the sizes are now known (see _letter)

    def _value(self, node) -> Val:
        v = self._evaluate(node)
        finite = np.abs(v.data[np.isfinite(v.data)])
        if finite.size:
            self.largest = max(self.largest, float(finite.max()))
        return v

    def _evaluate(self, node) -> Val:
        if isinstance(node, Num):
            return V.scalar(node.value)
        if isinstance(node, Name):
            return self.name(node, None, None)
        if isinstance(node, Scripted):
            return self.scripted(node)
        if isinstance(node, Op):
            return self.op(node)
        if isinstance(node, Neg):
            return V.unary(self._value(node.body), np.negative)
        if isinstance(node, Group):
            if len(node.items) != 1:
                raise NotCheckableError(f"a tuple {spell(node)}")
            return self._value(node.items[0])
        if isinstance(node, Frac):
            return self.frac(node)
        if isinstance(node, Apply):
            return self.apply(node)
        if isinstance(node, BigOp):
            return self.bigop(node)
        if isinstance(node, Wrap):
            return self.wrap(node)
        if isinstance(node, Relation):
            return self.iverson(node)
        raise NotCheckableError(f"the construct {type(node).__name__}")

    def op(self, node: Op) -> Val:
        if node.op == "juxt" and isinstance(node.right, Wrap) and node.right.kind == "text":
            self.world.require_variant(node.right.body)
            return self._value(node.left)
        a, b = self._value(node.left), self._value(node.right)
        if node.op == "juxt" or node.op == "\\cdot":
            return V.product(a, b)
        if node.op == "+":
            return V.elementwise("+", a, b, np.add)
        if node.op == "-":
            return V.elementwise("-", a, b, np.subtract)
        if node.op == "\\odot":
            return V.elementwise("\\odot", a, b, np.multiply)
        if node.op in ("\\oslash", "/"):
            return V.elementwise(node.op, a, b, np.divide)
        if node.op == "\\bmod":
            return V.elementwise(node.op, a, b, np.mod)
        raise NotCheckableError(f"the operator {node.op}")

    def frac(self, node: Frac) -> Val:
        num, den = node.num, node.den
        if _is_partial(num):
            if not _is_partial(den):
                raise NotCheckableError(f"a derivative over {spell(den)}")
            return self.gradient(_partial_of(num), _partial_of(den))
        return V.elementwise("/", self._value(num), self._value(den), np.divide)

    def gradient(self, of, wrt) -> Val:
        """Autograd's gradient of ``of`` (L, or a per-step L_t) with respect to ``wrt``."""
        loss = self.world.loss_letter(spell(of))
        if loss == "L":
            return self.symbol(wrt, gradient=True)
        if isinstance(of, Scripted) and spell(of.base) == "L" and of.sup is None \
                and of.sub is not None and len(of.sub) == 1:
            return self.symbol(wrt, gradient=True, step=of.sub[0])
        raise NotCheckableError(f"the derivative of {loss} (only gradients of L and of "
                                "per-step losses L_t)")

    def scripted(self, node: Scripted) -> Val:
        base, sub, sup = node.base, node.sub, node.sup
        if node.primes:
            raise NotCheckableError(f"a prime on {spell(node)} outside a function")
        if isinstance(base, Name) and base.text == "e" and sup is not None and sub is None \
                and self.world.lookup("e") is None:
            return V.unary(self._value(sup), np.exp)
        transpose = False
        if _is_top(sup):
            sup, transpose = None, True
        elif isinstance(sup, Op) and sup.op == "juxt" and _is_top(sup.right):
            sup, transpose = sup.left, True
        if isinstance(base, Name) and sup is not None and not _is_layer(sup) \
                and self.world.resolve(base, sub or (), sup) is not None:
            v = self.symbol(Scripted(base, sub, sup))  # z^i_t: a symbol with a superscript
            return V.transpose(v) if transpose else v
        if not isinstance(base, Name) or (sup is not None and not _is_layer(sup)):
            if sub is not None and not isinstance(base, Name) and not (
                    isinstance(base, Wrap) and base.kind == "norm"):
                if isinstance(base, Apply):
                    return self._subscripted(self._value(base), sub, sup, transpose)
                raise NotCheckableError(f"a subscript on {spell(base)}")
            power = sup
            inner = self._value(Scripted(base, sub, None) if sub is not None else base) \
                if not isinstance(base, Wrap) or base.kind != "norm" else self.norm(base, sub)
            if power is not None:
                p = self._value(power)
                inner = V.elementwise("power", inner, p, np.power)
            return V.transpose(inner) if transpose else inner
        v = self.symbol(Scripted(base, sub, sup) if (sub or sup) else base)
        return V.transpose(v) if transpose else v

    def _subscripted(self, v: Val, sub, sup, transpose: bool) -> Val:
        """``f(x)_{i}``: an entry of a function's value (``\\mathrm{softmax}(Z_n)_{y_n}``)."""
        axis = 0
        for item in _split(sub):
            before = len(v.pos)
            v = self.index(v, axis, item, 0)
            if len(v.pos) == before:
                axis += 1
        if sup is not None:
            v = V.elementwise("power", v, self._value(sup), np.power)
        return V.transpose(v) if transpose else v

    def name(self, node: Name, sub, sup) -> Val:
        return self.symbol(node)

    def symbol(self, node, gradient: bool = False, step=None) -> Val:
        """The value (or gradient) of a symbol, indexed by its subscripts; with ``step`` (the
        subscript of a per-step loss L_t) the gradient of that step's loss."""
        if isinstance(node, Name) and node.text.startswith("\\bar") and not gradient:
            return self.symbol(_unbar(node), gradient=True)
        if isinstance(node, Scripted) and isinstance(node.base, Name) \
                and node.base.text.startswith("\\bar") and not gradient:
            return self.symbol(Scripted(_unbar(node.base), node.sub, node.sup, node.primes),
                               gradient=True)
        if isinstance(node, Name):
            special = self.special(node)
            if special is not None:
                if gradient:
                    raise NotCheckableError(f"the gradient with respect to {node.text}")
                return special
        base, sub, sup = (node, (), None) if isinstance(node, Name) else \
            (node.base, node.sub or (), node.sup)
        whole = self.world.definitions.get(spell(node))
        if whole is not None and not whole[0] and not gradient:
            return self._value(whole[1])
        defined = self.world.definitions.get(spell(base) if sup is None else
                                             spell(Scripted(base, None, sup)))
        if defined is not None and not gradient:
            letters, expression = defined
            items = _split(sub)
            if not letters and items:  # \delta^{(1)}_j: the defined array, indexed
                v, axis = self._value(expression), 0
                for item in items:
                    before = len(v.pos)
                    v = self.index(v, axis, item, 0)
                    axis += len(v.pos) == before
                return v
            if len(items) != len(letters):
                raise NotCheckableError(f"{spell(node)} with {len(items)} subscripts where "
                                        f"its definition has {len(letters)}")
            return self._value(substitute(expression, dict(zip(letters, items))))
        found = self.world.resolve(base, sub, sup)
        if found is None:
            if isinstance(base, Name) and base.text == "\\mathbf e" and len(sub) == 1:
                return self.onehot_vector(sub[0])
            letter = spell(base) if isinstance(base, Name) else ""
            if not sub and sup is None and letter in self.letters | dict.fromkeys(self.bound):
                return self.letter_value(letter)
            if not sub and sup is None and self.world.dim(letter) is not None:
                return V.scalar(self.world.dim(letter))
            if not sub and sup is None and self.world.constant(letter) is not None:
                return V.scalar(self.world.constant(letter))
            raise NotCheckableError(f"the symbol {spell(node)}, bound to no value (add it to the "
                                    "Shapes table or to the record's symbols)")
        sym, indices = found
        data = sym.grad if gradient else sym.value
        if step is not None:
            data = self.world.values.step_grad(sym.name)
            if data is None or (sym.time and sym.time_base != 1):
                raise NotCheckableError(f"the gradient of a per-step loss with respect to "
                                        f"{spell(node)}: the reference returns no per-step "
                                        "losses L_t")
        if data is None:
            raise NotCheckableError(f"the gradient with respect to {spell(node)}, which the "
                                    "reference does not expose")
        v = Val(np.asarray(data, np.float64))
        if sym.sample_axis is not None:
            v = V.name_axis(v, sym.sample_axis + (step is not None), V.SAMPLE)
        if step is not None:
            v = self.index(v, 0, step, 1, time=True, steps=v.pos[0])
        if sym.time:
            if not indices:
                raise NotCheckableError(f"{spell(node)} without its time subscript")
            v = self.index(v, 0, indices[0], sym.time_base, time=True, steps=sym.steps)
            indices = indices[1:]
        axis = 0
        for item in indices:
            before = len(v.pos)
            v = self.index(v, axis, item, 0)
            if len(v.pos) == before:
                axis += 1
        return v

    def index(self, v: Val, axis: int, item, base: int, time: bool = False,
              steps: int | None = None) -> Val:
        """Positional ``axis`` of v indexed by one subscript item: a plain letter names the
        axis (einsum semantics), anything else (``t+1``, ``y_n``, ``1``) selects along it."""
        if not time and _names_time(item):
            time, base, steps = True, 1, None  # the letter t indexes time steps, from 1
        if axis >= len(v.pos):
            raise ShapeError(f"more subscripts than axes: {v.describe()} indexed by "
                             f"{spell(item)}")
        size = v.pos[axis] if steps is None else steps
        first = 1 if time else 0
        if isinstance(item, Name) and _is_letter(item.text):
            letter = item.text
            self._letter(letter, size, first)
            if letter not in self.bound and letter not in v.named \
                    and (time is False or base == first) \
                    and self.letters[letter] == (v.pos[axis], first) and base == first:
                return V.name_axis(v, axis, letter)
            return V.select(v, axis, self.letter_value(letter), base)
        if isinstance(item, Op) and item.op in ("+", "-") and isinstance(item.left, Name) \
                and _is_letter(item.left.text):
            self._letter(item.left.text, size, first)
        idx = self._value(item)
        return V.select(v, axis, idx, base)

    def _letter(self, letter: str, size: int, first: int) -> None:
        if letter not in self.letters:
            self.letters[letter] = (size, first)
            if self.pending:
                raise NeedSizeError

    pending = False

    def letter_value(self, letter: str) -> Val:
        if letter not in self.letters:
            self.pending = True
            raise NotCheckableError(f"the index {letter}, whose range no array gives")
        size, first = self.letters[letter]
        return V.letter_values(letter, size, first)

    def special(self, node: Name) -> Val | None:
        text = node.text
        if text == "\\mathbf 1":
            return V.ones()
        if text == "\\infty":
            return V.scalar(np.inf)
        return None

    def onehot_vector(self, item) -> Val:
        labels = self._value(item)
        classes = self.world.classes()
        data = (labels.data[..., None] == np.arange(classes)).astype(np.float64)
        return Val(data, labels.named, "col")

    def apply(self, node: Apply) -> Val:
        fn = node.fn
        primes, power, sub = 0, None, None
        if isinstance(fn, Scripted):
            primes, power, sub, fn = fn.primes, fn.sup, fn.sub, fn.base
        name = fn.text
        arg = self._value(node.arg)
        if name == "f" or name in NAMED_ACTIVATIONS:
            act = self.world.activation(sub) if name == "f" else NAMED_ACTIVATIONS[name]
            if primes > 2:
                raise NotCheckableError(f"the derivative of order {primes} of {name}")
            out = V.unary(arg, ACTIVATIONS[act][primes])
        elif primes:
            raise NotCheckableError(f"the derivative {name}'")
        elif name in ("\\log", "\\ln"):
            out = V.unary(arg, np.log)
        elif name == "\\exp":
            out = V.unary(arg, np.exp)
        elif name == "\\mathrm{softmax}":
            out = V.unary(arg, _softmax)
        elif name == "\\mathrm{sum}":
            out = V.sum_all(arg)
        elif name == "\\mathrm{diag}":
            if len(arg.pos) != 1:
                raise ShapeError(f"diag of {arg.describe()}, not a vector")
            out = Val(arg.data[..., :, None] * np.eye(arg.pos[0]), arg.named)
        else:
            raise NotCheckableError(f"the function {name}")
        if sub is not None and name != "f":
            raise NotCheckableError(f"a subscript on the function {name}")
        if power is not None:
            out = V.elementwise("power", out, self._value(power), np.power)
        return out

    def bigop(self, node: BigOp) -> Val:
        if node.kind not in ("sum", "max", "min"):
            raise NotCheckableError(f"\\{node.kind}")
        items = node.sub or ()
        if len(items) == 1 and isinstance(items[0], Wrap) and items[0].kind == "text" \
                and items[0].body.strip() == "batch":
            return V.sum_over(self._value(node.body), V.SAMPLE) if node.kind == "sum" else \
                _raise(NotCheckableError("a max over the batch"))
        letters, masks = [], []
        for item in items:
            if isinstance(item, Name) and _is_letter(item.text):
                letters.append(item.text)
            elif isinstance(item, Op) and item.op == "juxt" and _letters(item):
                letters.extend(_letters(item))
            elif isinstance(item, Relation) and len(item.parts) == 2 and item.rels[0] == "=" \
                    and isinstance(item.parts[0], Name) and _is_letter(item.parts[0].text):
                letters.append(item.parts[0].text)
                masks.append(("lo", item.parts[0].text, item.parts[1]))
            elif isinstance(item, Condition) and isinstance(item.var, Name):
                letters.append(item.var.text)
                masks.append(("if", item.var.text, item.test))
            else:
                raise NotCheckableError(f"the range {spell(item)} of \\{node.kind}")
        if node.sup is not None:
            if len(letters) != 1:
                raise NotCheckableError(f"an upper bound on a \\{node.kind} over several indices")
            masks.append(("hi", letters[0], node.sup))
        self.bound |= set(letters)
        body = self._value(node.body)
        for kind, letter, bound in masks:
            if letter not in body.named:
                raise ShapeError(f"a sum over {letter}, an index the summand "
                                 f"{body.describe()} does not carry")
            here = self.letter_value(letter)
            size, first = self.letters[letter]
            if kind != "if" and first == 0:
                # An explicit range counts as mathematics does, from 1 (sum_{i=1}^N over the
                # N entries of an array axis, which the arrays count from 0).
                here = V.letter_values(letter, size, 1)
            if kind == "if":
                mask = self.iverson(bound)
            else:
                limit = self._value(bound)
                mask = V.elementwise("range", here, limit,
                                     np.greater_equal if kind == "lo" else np.less_equal)
            body = V.elementwise("\\odot", body, mask, _masked)
        reduce = {"sum": np.sum, "max": np.max, "min": np.min}[node.kind]
        for letter in letters:
            body = V.reduce_named(body, letter, reduce)
        return body

    def wrap(self, node: Wrap) -> Val:
        if node.kind == "iverson":
            return self.iverson(node.body)
        if node.kind == "norm":
            return self.norm(node, None)
        if node.kind == "sqrt":
            return V.unary(self._value(node.body), np.sqrt)
        if node.kind == "floor":
            return V.unary(self._value(node.body), np.floor)
        if node.kind == "concat":
            parts = [self._value(p) for p in node.body]
            order = parts[0].named
            if any(set(p.named) != set(order) or len(p.pos) != len(parts[0].pos)
                   for p in parts) or not parts[0].pos:
                raise ShapeError("a concatenation of parts of different shapes: "
                                 + ", ".join(p.describe() for p in parts))
            data = np.concatenate([V.to_layout(p, order) for p in parts], axis=-1)
            return Val(data, order, parts[0].orient)
        raise NotCheckableError(f"the bracket {node.kind}")

    def norm(self, node: Wrap, sub) -> Val:
        if sub not in (None, (Name("F"),)):
            raise NotCheckableError(f"the norm with subscript {sub}")
        inner = self._value(node.body)
        return V.unary(V.sum_all(V.unary(inner, np.square)), np.sqrt)

    def iverson(self, node) -> Val:
        if not isinstance(node, Relation) or len(node.parts) != 2 \
                or node.rels[0] not in RELATIONS:
            raise NotCheckableError(f"the bracket [{spell(node)}]")
        a, b = self._value(node.parts[0]), self._value(node.parts[1])
        test = RELATIONS[node.rels[0]]
        return V.elementwise("[...]", a, b, lambda x, y: test(x, y).astype(np.float64))


class NeedSizeError(Exception):
    """An index letter's range was met after its first use: evaluate again."""


def _masked(x, m):
    # A masked-out entry is 0 even where the summand is infinite or undefined there.
    return np.where(m != 0, x * m, 0.0)


def _raise(exc):
    raise exc


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _is_partial(node) -> bool:
    return isinstance(node, Op) and node.op == "juxt" and node.left == Name("\\partial")


def _partial_of(node):
    return node.right


def _is_top(node) -> bool:
    return isinstance(node, Name) and node.text in ("\\top", "T", "\\intercal")


def _is_layer(sup) -> bool:
    """A layer superscript ``(l)``, ``(l,p,d)`` or a decoration like ``\\mathcal G``."""
    return isinstance(sup, Group) or (isinstance(sup, Name) and sup.text.startswith("\\mathcal"))


def _is_letter(text: str) -> bool:
    return (len(text) == 1 and text.isalpha()) or text in GREEK_INDEX


def _letters(node) -> list[str]:
    if isinstance(node, Name) and _is_letter(node.text):
        return [node.text]
    if isinstance(node, Op) and node.op == "juxt":
        left, right = _letters(node.left), _letters(node.right)
        return left + right if left and right else []
    return []


TIME_LETTERS = ("t",)


def _names_time(item) -> bool:
    """``t``, ``t+1``, ``t-1``: a time subscript, whatever the symbol's Shapes row says."""
    if isinstance(item, Name):
        return item.text in TIME_LETTERS
    return isinstance(item, Op) and item.op in ("+", "-") and _names_time(item.left)


def substitute(node, mapping: dict):
    """``node`` with each index letter of ``mapping`` replaced by its node (all at once)."""
    if isinstance(node, Name):
        return mapping.get(node.text, node)
    if isinstance(node, tuple):
        return tuple(substitute(n, mapping) for n in node)
    if hasattr(node, "__dataclass_fields__"):
        return type(node)(**{f: substitute(getattr(node, f), mapping)
                             for f in node.__dataclass_fields__})
    return node


def _split(items) -> list:
    out = []
    for item in items:
        letters = _letters(item)
        out += [Name(x) for x in letters] if letters else [item]
    return out


def _unbar(node: Name) -> Name:
    text = node.text
    if text.startswith("\\bar{") and text.endswith("}"):
        return Name(text[5:-1])
    return Name(text[len("\\bar "):])
