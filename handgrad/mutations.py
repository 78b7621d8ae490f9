"""A catalogue of mutation operators modelled on real bugs in hand-written backprop.

Each operator turns any right derivation into a wrong one, without knowing the derivation: it
changes what ``backward`` returns or how it behaves. Bugs that live inside one derivation's math
(a softmax Jacobian cut to its diagonal, a missing kernel rotation, a dropped recurrent term)
are records of their own, ``expect="reject"`` with ``expect_kind``, next to the derivation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from handgrad.record import Derivation


@dataclass(frozen=True)
class Mutation:
    name: str
    models: str
    kinds: tuple[str, ...]  # acceptable diagnoses
    target: str  # "matrix", "vector" or "any": which gradient it changes
    change: Callable  # (grads, key, dout, batch) -> grads | raises


def _edit(fn):
    """An operator that replaces one gradient by ``fn(g, batch)``."""
    def change(grads, key, dout, batch):
        return {**grads, key: fn(np.asarray(grads[key]), batch)}
    return change


def _clip(g, batch):
    t = 0.5 * float(np.abs(g).max())
    return np.clip(g, -t, t)


def _one_element(g, batch):
    out = g.copy()
    out.flat[0] += 0.5 * float(np.abs(g).max()) + 1.0
    return out


def _first_slice(g, batch):
    out = g.copy()
    out[0] *= 3.0
    return out


def _drop(grads, key, dout, batch):
    return {k: v for k, v in grads.items() if k != key}


def _extra(grads, key, dout, batch):
    return {**grads, "unused_bias": np.zeros(3)}


def _upstream_in_place(grads, key, dout, batch):
    dout *= 2.0
    return grads


def _noise(grads, key, dout, batch):
    g = np.asarray(grads[key])
    return {**grads, key: g + 1e-3 * np.abs(g).max() * np.random.default_rng().random(g.shape)}


def _raise(grads, key, dout, batch):
    raise ZeroDivisionError("float division by zero")


def _tuple(grads, key, dout, batch):
    return tuple(grads.values())


CATALOGUE: tuple[Mutation, ...] = (
    Mutation("sign-flip", "d(-x) written as dx", ("sign",), "matrix", _edit(lambda g, n: -g)),
    Mutation("factor-2", "1/2 of a squared loss dropped", ("factor",), "matrix",
             _edit(lambda g, n: 2 * g)),
    Mutation("factor-half", "a symmetric term counted once", ("factor",), "vector",
             _edit(lambda g, n: 0.5 * g)),
    Mutation("mean-for-sum", "a mean where the loss sums over the batch", ("factor",), "matrix",
             _edit(lambda g, n: g / n)),
    Mutation("missing-1/N", "the 1/N of a batch mean forgotten", ("factor",), "vector",
             _edit(lambda g, n: g * n)),
    Mutation("rounded-constant", "a constant written with six digits (rel. error 1e-6)",
             ("factor",), "matrix", _edit(lambda g, n: g * (1 + 1e-6))),
    Mutation("transposed", "dW = X^T dY where dY^T X is meant", ("wrong-shape", "transposed"),
             "matrix", _edit(lambda g, n: np.swapaxes(g, 0, 1).copy())),
    Mutation("bias-not-reduced", "bias gradient not summed over the batch", ("wrong-shape",),
             "vector", _edit(lambda g, n: np.tile(g / n, (n,) + (1,) * g.ndim))),
    Mutation("zeroed", "gradient never accumulated (left at its initial zero)", ("zero",),
             "any", _edit(lambda g, n: np.zeros_like(g))),
    Mutation("clipped", "gradient clipped inside backward", ("threshold",), "matrix",
             _edit(_clip)),
    Mutation("one-element", "one entry wrong (an index off at a border)", ("entries",),
             "matrix", _edit(_one_element)),
    Mutation("first-slice", "the first slice handled by a special case", ("slices", "factor"),
             "matrix", _edit(_first_slice)),
    Mutation("permuted", "rows of the gradient in the wrong order",
             ("permuted", "flipped", "transposed"), "matrix",
             _edit(lambda g, n: np.roll(g, 1, axis=0))),
    Mutation("dropped-key", "a gradient forgotten in the returned dict", ("missing-key",), "any",
             _drop),
    Mutation("unused-bias", "a gradient for a parameter the forward never uses", ("extra-key",),
             "any", _extra),
    Mutation("nan", "log(0) or 0/0 inside backward", ("non-finite",), "any",
             _edit(lambda g, n: g * np.nan)),
    Mutation("float64-leak", "a float64 constant promotes a float32 gradient", ("wrong-dtype",),
             "any", _edit(lambda g, n: g.astype(np.float64) if g.dtype == np.float32 else
                          g.astype(np.float32))),
    Mutation("upstream-in-place", "dout *= ... modifies the caller's upstream gradient",
             ("mutated-upstream",), "any", _upstream_in_place),
    Mutation("nondeterministic", "unseeded randomness (dropout left on) in backward",
             ("nondeterministic",), "any", _noise),
    Mutation("exception", "a division by a zero-size dimension", ("exception",), "any", _raise),
    Mutation("tuple", "gradients returned as a positional tuple", ("not-a-dict",), "any",
             _tuple),
)


def pick_target(record: Derivation, target: str) -> str | None:
    """The differentiable input an operator changes: the first non-square matrix-like weight,
    the first vector, or the first differentiable input."""
    for key in record.differentiable:
        shape = record.inputs[key]
        if target == "matrix" and len(shape) >= 2 and len(set(shape[:2])) == 2:
            return key
        if target == "vector" and len(shape) == 1:
            return key
        if target == "any":
            return key
    return None


def mutate(record: Derivation, mutation: Mutation) -> Derivation | None:
    """The mutant of ``record``, or None if the operator has nothing to act on."""
    key = pick_target(record, mutation.target)
    if key is None:
        return None
    first = next(iter(record.inputs))

    def forward(**inputs):
        out, cache = record.forward(**inputs)
        shape = np.shape(inputs[first])
        return out, (cache, shape[0] if shape else 1)

    def backward(dout, wrapped):
        cache, batch = wrapped
        grads = dict(record.backward(dout, cache))
        return mutation.change(grads, key, dout, batch)

    return dataclasses.replace(record, name=f"{record.name}~{mutation.name}", forward=forward,
                               backward=backward, expect="reject",
                               erratum=f"mutant: {mutation.models} ({key})",
                               expect_kind=mutation.kinds[0], bench=(),
                               kink_distance=(lambda w: record.kink_distance(w[0]))
                               if record.kink_distance else None)


@dataclass(frozen=True)
class LinearMutation:
    """An operator on a hand ``jvp`` (its output tangent) or ``hvp`` (one H v, or all)."""

    name: str
    models: str
    kinds: tuple[str, ...]  # acceptable diagnoses
    field: str  # "jvp" or "hvp"
    change: Callable  # (result, key) -> result; or, with ``on_direction``, (direction, key)
    on_direction: bool = False  # changes what the hand function is given, not what it returns


def _swap(a):
    """Axes 0 and 1 swapped (a vector reversed); a scalar has no axes to swap."""
    a = np.asarray(a)
    if a.ndim == 0:
        raise ValueError("a scalar tangent cannot be transposed")
    return np.swapaxes(a, 0, 1).copy() if a.ndim >= 2 else a[::-1].copy()


def _slice(a):
    """The first slice tripled (a scalar: tripled)."""
    out = np.array(a, copy=True)
    if out.ndim:
        out[0] *= 3.0
        return out
    return out * 3.0


def _drop(direction, key):
    return {**direction, key: np.zeros_like(direction[key])}


LINEAR_CATALOGUE: tuple[LinearMutation, ...] = tuple(
    LinearMutation(f"{field}-{name}", models, kinds, field, change, on_direction)
    for field in ("jvp", "hvp")
    for name, models, kinds, change, on_direction in (
        ("sign", "a sign flipped", ("sign",), lambda a: -np.asarray(a), False),
        ("factor-2", "a factor 2 (a symmetric term counted twice)", ("factor",),
         lambda a: 2 * np.asarray(a), False),
        ("factor-half", "a factor 1/2 (the 1/2 of a square kept)", ("factor",),
         lambda a: 0.5 * np.asarray(a), False),
        ("transposed", "a matrix product written the wrong way round",
         ("wrong-shape", "transposed", "values", "permuted", "flipped"), _swap, False),
        ("dropped-term", "the term of one input dropped (its direction never enters)",
         ("values", "zero", "zero-entries", "slices", "factor", "entries"), _drop, True),
        ("one-slice", "the first slice handled by a special case",
         ("slices", "factor", "entries", "values"), _slice, False),
    )
)


def mutate_linear(record: Derivation, mutation: LinearMutation) -> Derivation | None:
    """The mutant of ``record``'s jvp or hvp, or None if it has none. Output operators change
    the output tangent (jvp) or the H v of the first matrix-like input (hvp); the dropped term
    zeroes the direction of the first differentiable input."""
    fn = getattr(record, mutation.field)
    if fn is None or (mutation.change is _swap and mutation.field == "jvp"
                      and record.output == ()):
        return None
    key = pick_target(record, "matrix") or pick_target(record, "any")

    if mutation.field == "jvp":
        def jvp(tangents, cache):
            if mutation.on_direction:
                return fn(mutation.change(dict(tangents), key), cache)
            result = fn(tangents, cache)
            if isinstance(result, tuple):
                return mutation.change(result[0]), result[1]
            return mutation.change(result)
        changed = {"jvp": jvp}
    else:
        def hvp(dout, v, cache):
            if mutation.on_direction:
                return fn(dout, mutation.change(dict(v), key), cache)
            result = dict(fn(dout, v, cache))
            return {**result, key: mutation.change(result[key])}
        changed = {"hvp": hvp}
    return dataclasses.replace(record, name=f"{record.name}~{mutation.name}", expect="reject",
                               erratum=f"mutant: {mutation.models} ({mutation.field}, {key})",
                               expect_kind=mutation.kinds[0], bench=(), **changed)
