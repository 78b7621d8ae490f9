"""Which letter of a page is which array: the page's Shapes table, the record's ``symbols`` and
the reference's names, and the values and gradients of one case.

:func:`reference_values` runs the record's PyTorch reference once on a case and differentiates
``S = sum(dout * out)`` (``L`` itself for a scalar loss) with respect to every input and every
named intermediate it returns (a list of tensors, one per time step, is stacked; each step's
gradient is its total gradient). A :class:`World` then binds page symbols to those arrays.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from handgrad.autograd import to_tensors
from handgrad.pages.parser import Group, Name, Num, Op, Scripted, parse, spell
from handgrad.pages.values import NotCheckableError

# Conventional code names of Greek letters (a reference's keyword arguments use them).
GREEK = {"\\tau": ("window",), "\\lambda": ("lam", "lambda_", "weight_decay"),
         "\\varepsilon": ("eps", "epsilon"),
         "\\epsilon": ("eps", "epsilon"), "\\rho": ("rho",), "\\eta": ("lr", "eta"),
         "\\gamma": ("gamma",), "\\beta": ("beta",), "\\mu": ("mu",), "\\nu": ("nu", "var"),
         "\\xi": ("xi",), "\\Pi": ("Pi", "prototypes"), "\\sigma": ("sigma",)}
ACCENT_NAMES = {"\\hat": "hat", "\\tilde": "tilde", "\\bar": "bar", "\\dot": "dot"}


@dataclass
class Values:
    """One case's arrays: ``value[name]`` and ``grad[name]`` (dL/dname, ``L`` the loss or
    ``sum(dout * out)``), ``out`` the output, ``kwargs`` the reference's keyword options.
    ``step_grad(name)`` gives dL_t/dname for every step t (shape (T, *shape)) where the
    reference returns its per-step losses as ``L_t``; computed on first use."""

    value: Mapping[str, np.ndarray]
    grad: Mapping[str, np.ndarray]
    out: np.ndarray
    kwargs: Mapping[str, object]
    steps: object = None  # (per-step losses tensor, {name: [tensors]}) for step_grad
    _step_grads: dict | None = None

    def step_grad(self, name: str) -> np.ndarray | None:
        if self.steps is None:
            return None
        if self._step_grads is None:
            self._step_grads = _per_step_gradients(*self.steps)
        return self._step_grads.get(name)


def _per_step_gradients(per_step: torch.Tensor, wrt: Mapping[str, list]) -> dict:
    """{name: dL_t/dname for every t}: one backward pass per step (batched where autograd
    can)."""
    names = list(wrt)
    flat = [s for k in names for s in wrt[k]]
    T = per_step.shape[0]
    try:  # every step's loss in one vectorised backward pass
        batched = torch.autograd.grad(per_step, flat, torch.eye(T, dtype=per_step.dtype),
                                      retain_graph=True, allow_unused=True,
                                      is_grads_batched=True)
        rows = [[np.zeros(tuple(s.shape)) if g is None else g[t].detach().numpy()
                 for s, g in zip(flat, batched)] for t in range(T)]
    except RuntimeError:  # an op without a batching rule: one pass per step
        rows = []
        for t in range(T):
            grads = torch.autograd.grad(per_step[t], flat, retain_graph=True,
                                        allow_unused=True)
            rows.append([np.zeros(tuple(s.shape)) if g is None else g.detach().numpy().copy()
                         for s, g in zip(flat, grads)])
    out, at = {}, 0
    for k in names:
        n = len(wrt[k])
        per_t = [np.stack(r[at:at + n]) if n > 1 or isinstance(wrt[k], tuple) else r[at]
                 for r in rows]
        out[k] = np.stack(per_t)
        at += n
    return out


def reference_values(record, inputs: Mapping[str, np.ndarray], dout: np.ndarray) -> Values:
    """The reference's values and autograd's gradients of one case, in float64."""
    tensors = to_tensors(record, inputs, "float64")
    result = record.reference(**tensors)
    out, inter = result if isinstance(result, tuple) else (result, {})
    names, wrt, value, stacked = [], [], {}, set()
    for k, t in tensors.items():
        value[k] = t.detach().numpy().copy()
        if t.requires_grad:
            names.append(k)
            wrt.append([t])
    for k, t in inter.items():
        steps = list(t) if isinstance(t, (list, tuple)) else [t]
        if not steps or not all(isinstance(s, torch.Tensor) for s in steps):
            continue
        if isinstance(t, (list, tuple)):
            stacked.add(k)
            value[k] = torch.stack([s.detach() for s in steps]).numpy().copy()
        else:
            value[k] = t.detach().numpy().copy()
        if all(s.requires_grad for s in steps):
            names.append(k)
            wrt.append(steps)
    scalar = out.dim() == 0
    upstream = torch.ones((), dtype=out.dtype) if scalar else \
        torch.as_tensor(np.array(dout), dtype=out.dtype)
    flat = [s for group in wrt for s in group]
    per_step = inter.get("L_t")
    keep = isinstance(per_step, torch.Tensor) and per_step.requires_grad
    grads = torch.autograd.grad((out * upstream).sum(), flat, allow_unused=True,
                                retain_graph=keep) if flat else ()
    grad, at = {}, 0
    for k, group in zip(names, wrt):
        parts = [np.zeros(tuple(s.shape)) if g is None else g.detach().numpy().copy()
                 for s, g in zip(group, grads[at:at + len(group)])]
        at += len(group)
        grad[k] = np.stack(parts) if k in stacked else parts[0]
    # the output (a layer's O): its gradient is the upstream one (1 for a scalar loss)
    value["(output)"] = out.detach().numpy().copy()
    grad["(output)"] = np.array(1.0 if scalar else dout, dtype=np.float64)
    steps = None
    if keep:
        steps = (per_step, {k: (tuple(g) if k in stacked else g) for k, g in zip(names, wrt)
                            if k != "L_t"})
    return Values(value, grad, out.detach().numpy().copy(), options(record.reference), steps)


def options(fn) -> dict:
    """The keyword options bound into a reference (``functools.partial``, through wrappers):
    the loss, the activations, the decay that page symbols such as ``f`` and ``\\lambda``
    denote."""
    found: dict = {}
    seen = 0
    while fn is not None and seen < 20:
        seen += 1
        fn = inspect.unwrap(fn)
        if isinstance(fn, functools.partial):
            found = {**fn.keywords, **found}
            fn = fn.func
        else:
            break
    return found


@dataclass(frozen=True)
class Sym:
    """One bound symbol: its value and gradient arrays, whether its first axis is time (steps
    ``steps``, the first stored step being step ``time_base``), and the hidden sample axis of a
    page written for one sample."""

    key: str
    value: np.ndarray | None
    grad: np.ndarray | None
    time: bool = False
    name: str = ""  # the code's name (for per-step gradients)
    time_base: int = 1
    steps: int | None = None
    sample_axis: int | None = None


@cache
def canonical(latex: str) -> str:
    """The spelling of a symbol's LaTeX that lookups use (``W_1`` and ``W_{1}`` are one)."""
    try:
        tree = parse(latex)
    except ValueError:
        return latex.strip()
    return spell(tree)


def code_names(key: str) -> list[str]:
    """Candidate code names of a page symbol: ``W_{1}`` -> W1, ``\\hat y`` -> yhat,
    ``x_{t}`` -> x, ``h_{0}`` -> h0, ``W_{y}`` -> Wy, ``\\lambda`` -> lam."""
    out = []
    if key in GREEK:
        out += GREEK[key]
    text = key
    for accent, word in ACCENT_NAMES.items():
        if text.startswith(accent + " "):
            rest = text[len(accent) + 1:]
            out += [rest + word, word + "_" + rest, rest + "_" + word]
    plain = text.replace("_{", "").replace("}", "").replace("{", "").replace("^", "")
    plain = plain.replace("(", "").replace(")", "").replace(",", "").replace("\\", "")
    plain = plain.replace(" ", "")
    out += [plain, plain.replace("mathcal", "")]
    if "_{" in key:
        out.append(key.split("_{")[0].lstrip("\\"))
    return out


class World:
    """The bindings of one page on one case of one record."""

    def __init__(self, page, record, values: Values, dims: Mapping[str, int]):
        self.page, self.record, self.values = page, record, values
        self.dims = {k.lower(): v for k, v in dims.items()}
        self.dims.update(dims)
        overrides = {canonical(k): v for k, v in (getattr(record, "symbols", None) or {}).items()}
        self.syms: dict[str, Sym] = {}
        self.time_keys: set[str] = set()
        # symbols the record defines by an expression: {"\\delta_{t,k}": r"\\frac{...}"}
        self.definitions: dict[str, tuple] = {}
        steps = dims.get("T")
        self.per_sample = _per_sample(page)
        self.page_batch = [d for d in BATCH_DIMS if d in page.dims]
        for latex, shape in page.shapes.items():
            key = canonical(latex)
            time = key.endswith("_{t}")
            base = key[:-4] if time else key
            options = page.alternatives.get(latex, (shape,))
            self._bind(base if time else key, options, overrides, time, steps)
        for key, name in list(overrides.items()):
            if "\\" in name or "{" in name or (self._array(name) is None and name in dims):
                self._define(key, name)
                continue
            if key.endswith("_{t}") and key[:-4] in self.time_keys:
                continue
            if "_{t}" in key and key.replace("_{t}", "") not in self.syms:
                self._bind(key.replace("_{t}", ""), None, {key.replace("_{t}", ""): name},
                           True, steps)
                continue
            if key not in self.syms and self._array(name) is not None:
                self._bind(key, None, overrides, False, steps)
        self._bind_onehot()

    def _bind_onehot(self) -> None:
        """``E``, the one-hot matrix of integer labels ``y`` (``E_t`` per step)."""
        y = self.values.value.get("y")
        if "E" in self.syms or y is None or not np.issubdtype(np.asarray(y).dtype, np.integer):
            return
        try:
            classes = self.classes()
        except NotCheckableError:
            return
        onehot = (np.asarray(y)[..., None] == np.arange(classes)).astype(np.float64)
        ysym = self.syms.get("y")
        time = ysym is not None and ysym.time
        self.syms["E"] = Sym("E", onehot, None, time=time, steps=np.shape(y)[0] if time else None,
                             sample_axis=ysym.sample_axis if ysym else None, name="E")
        if time:
            self.time_keys.add("E")

    def _define(self, key: str, expression: str) -> None:
        """``\\delta_{t,k}`` := an expression in the letters of its subscripts."""
        head = parse(key)
        body = parse(expression)
        if isinstance(body, (Name, Num)):  # d_k := d, a constant: the whole key is the name
            self.definitions[key] = ((), body)
            return
        letters = tuple(spell(i) for i in _split_letters(head.sub or ())) \
            if isinstance(head, Scripted) else ()
        base = spell(head.base) if isinstance(head, Scripted) else spell(head)
        if isinstance(head, Scripted) and head.sup is not None:  # \delta^{(2)}: one per layer
            base = spell(Scripted(head.base, None, head.sup))
        self.definitions[base] = (letters, body)

    def loss_letter(self, latex: str) -> str:
        """"L" for the page's letter of the loss (``\\mathcal L`` bound to ``L`` by the
        record's symbols), else ``latex`` itself."""
        bound = {canonical(k): v for k, v in (getattr(self.record, "symbols", None) or {}).items()}
        return "L" if bound.get(latex) == "L" else latex

    def _array(self, name: str):
        v = self.values
        if name in v.value or name in v.grad:
            return name
        return None

    def _bind(self, key: str, options, overrides, time: bool, steps) -> None:
        name = overrides.get(key) or overrides.get(f"{key}_{{t}}")
        candidates = [name] if name else code_names(key) + (["(output)"] if key == "O" else [])
        if time and not name:
            # a reference's list of steps is spelled with the time subscript: h_t, z_t
            candidates = [f"{c}_t" for c in candidates] + candidates
        found = next((c for c in candidates if self._array(c)), None)
        if found is None:
            return
        value = self.values.value.get(found)
        grad = self.values.grad.get(found)
        array = value if value is not None else grad
        sample_axis = None
        ranks = [_rank(o) + (1 if time else 0) for o in (options or ()) if o is not None
                 and _rank(o) >= 0]
        symbolic = self.record.inputs.get(found) or self.record.intermediate_shapes.get(found)
        stacked = [o for o in (options or ()) if o and len(_dim_list(o)) >= 3
                   and _dim_list(o)[0] in BATCH_DIMS]
        if stacked and not time and array is not None and np.ndim(array) >= 3:
            # a stack of matrices, (B, T, S): the products act on each, the batch is hidden
            sample_axis = 0
        elif self.per_sample and symbolic:
            batch = [i for i, d in enumerate(symbolic) if d in self.page_batch]
            sample_axis = batch[0] if batch else None
        elif self.per_sample and array is not None and ranks \
                and np.ndim(array) not in ranks and np.ndim(array) - 1 in ranks:
            sample_axis = 1 if time else 0
        time_base = 1
        n_steps = steps if time else None
        if time:
            first = self._initial(key, overrides)
            if first is not None and value is not None:
                value = np.concatenate([first[0][None], value])
                grad = None if grad is None or first[1] is None else \
                    np.concatenate([first[1][None], grad])
                time_base = 0
            if n_steps is None and array is not None:
                n_steps = np.shape(array)[0]
            self.time_keys.add(key)
        self.syms[key] = Sym(key, value, grad, time=time, time_base=time_base, steps=n_steps,
                             sample_axis=sample_axis, name=found)

    def _initial(self, key: str, overrides):
        """The step-0 arrays (``h_0`` beside ``h_t``) as (value, grad), or None."""
        zero = canonical(f"{key}_0")
        name = overrides.get(zero)
        for c in ([name] if name else code_names(zero)[:-1]):
            if c and self._array(c):
                return self.values.value.get(c), self.values.grad.get(c)
        return None

    def _step_losses(self) -> Sym:
        """The per-step losses ``L_t`` the reference returns (summed over the batch)."""
        value = self.values.value["L_t"]
        return Sym("L_{t}", value, None, time=True, steps=np.shape(value)[0], name="L_t")

    def lookup(self, key: str) -> Sym | None:
        return self.syms.get(key)

    def resolve(self, base, sub: tuple, sup) -> tuple[Sym, tuple] | None:
        """(symbol, the subscript items left as indices) for ``base_{sub}^{sup}``."""
        head = spell(base)
        if sup is not None:
            head += "^{" + spell(sup) + "}"
        if head not in self.syms and head not in self.time_keys:
            # A page without a Shapes table: a letter spelled as the code spells it (X for X)
            # binds as the table would bind it.
            self._bind(head, None, {}, False, self.dims.get("T"))
        items = list(sub)
        if head == "L" and items and "L_t" in self.values.value:
            return self._step_losses(), tuple(items)
        for j in range(len(items), -1, -1):
            key = head if j == 0 else head + "_{" + ",".join(spell(s) for s in items[:j]) + "}"
            if sup is not None and j:
                key = spell(base) + "_{" + ",".join(spell(s) for s in items[:j]) + "}^{" + \
                    spell(sup) + "}"
            sym = self.syms.get(key)
            if sym is not None and (j == 0 or not sym.time):
                return sym, _split_letters(items[j:])
            if key in self.time_keys and j == 0:
                return self.syms[key], _split_letters(items)
        if sup is None and items:
            key = head + "_{" + ",".join(spell(s) for s in items) + "}"
            if key in self.syms:
                return self.syms[key], ()
        return None

    def dim(self, letter: str) -> int | None:
        if letter in self.dims:
            return self.dims[letter]
        return None

    def constant(self, latex: str) -> float | None:
        kw = self.values.kwargs
        for c in code_names(latex):
            if c in kw and isinstance(kw[c], (int, float)) and not isinstance(kw[c], bool):
                return float(kw[c])
        return None

    def activation(self, sub) -> str:
        """The activation ``f`` (or ``f_1``, ``f_2``) names, from the reference's options."""
        kw = self.values.kwargs
        names = ["f", "activation", "act"] if not sub else [f"f{spell(sub[0])}"]
        for n in names:
            if isinstance(kw.get(n), str):
                value = kw[n]
                return {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu",
                        "identity": "identity", "id": "identity"}.get(value, value)
        raise NotCheckableError(f"the activation f{'_' + spell(sub[0]) if sub else ''}: the "
                           "reference's options do not name it")

    def require_variant(self, text: str) -> None:
        label = text.strip().strip("()").strip().lower()
        loss = str(self.values.kwargs.get("loss", "")).lower()
        if loss and label in ("ce", "l2") and label != loss:
            raise OtherVariantError(text)

    def classes(self) -> int:
        for k in ("C", "c"):
            if k in self.dims:
                return self.dims[k]
        raise NotCheckableError("one-hot labels without a class count C")

    def onehot_matrix(self) -> np.ndarray:
        y = self.values.value.get("y")
        if y is None:
            raise NotCheckableError("the one-hot E without labels y")
        y = np.asarray(y).astype(int)
        return (y[..., None] == np.arange(self.classes())).astype(np.float64)


class OtherVariantError(NotCheckableError):
    """A part of an equation written for another variant (``\\text{(L2)}`` on a CE record)."""


BATCH_DIMS = ("N", "B")


def _per_sample(page) -> bool:
    """A page written for one sample: it names a batch size (N or B) that no shape uses."""
    batch = [d for d in BATCH_DIMS if d in page.dims]
    return bool(batch) and not any(d in _dims_of(shape) for shape in page.shapes.values()
                                   for d in batch)


def _dims_of(shape: str) -> set[str]:
    return set(_dim_list(shape))


def _dim_list(shape: str) -> list[str]:
    try:
        tree = parse(shape)
    except ValueError:
        return []
    items = tree.items if isinstance(tree, Group) else \
        tree.left.items if isinstance(tree, Op) and isinstance(tree.left, Group) else ()
    return [spell(i) for i in items]


def _rank(shape: str | None) -> int:
    """The number of axes a Shapes cell gives: ``(M, D)`` 2, ``\\mathbb R^C`` 1, a set of labels
    ``\\{0, \\dots, C-1\\}`` 0; -1 where it says none."""
    if not shape:
        return -1
    if shape.lstrip().startswith("\\{"):
        return 0
    try:
        tree = parse(shape)
    except ValueError:
        return -1
    if isinstance(tree, Scripted) and spell(tree.base) == "\\mathbb R":
        sup = tree.sup
        if isinstance(sup, Op) and sup.op == "\\times":
            return 2
        return 1
    if isinstance(tree, Group):
        return len(tree.items)
    if isinstance(tree, Op) and tree.op == "juxt" and isinstance(tree.left, Group):
        return len(tree.left.items)
    return -1


def _split_letters(items) -> tuple:
    """``nj`` (a run of letters) -> ``n, j``."""
    out = []
    for item in items:
        letters = _run(item)
        out += letters if letters else [item]
    return tuple(out)


def _run(node) -> list:
    if isinstance(node, Name) and len(node.text) == 1:
        return [node]
    if isinstance(node, Op) and node.op == "juxt":
        left, right = _run(node.left), _run(node.right)
        return left + right if left and right else []
    if isinstance(node, Num):
        return []
    if isinstance(node, Scripted):
        return []
    return []
