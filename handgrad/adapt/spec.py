"""What the adapters of :mod:`handgrad.adapt` share: the parsed description of the wrapped code
(inputs, dims, samplers, outputs, layouts), joining and splitting several outputs, keying the
gradients by input name, the reference moved into its own layout, and the engine's cache."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from handgrad.record import Derivation, DerivationError
from handgrad.shapes import Dims, Shape, check_covered, parse_dims, parse_shapes, permutation

ShapeSpec = str | Mapping[str, str | Sequence[str | int]]
DimSpec = Mapping[str, tuple[int, int] | int | str]

BUILT = ("forward", "backward", "reference", "inputs", "derive")
OUT = "out"


def fail(name: str, message: str) -> DerivationError:
    return DerivationError(f"derivation {name!r}: {message}")


@dataclass
class Spec:
    """What the three adapters share: parsed shapes and dims, samplers, outputs, layouts."""

    name: str
    dims: Dims
    data: dict[str, Shape]
    params: dict[str, Shape]
    params_first: bool
    nondiff: frozenset[str]
    samplers: dict[str, Callable]
    outputs: dict[str, Shape] | None
    # input or output name -> (into the reference's layout, back), each a tensor -> tensor
    layouts: dict[str, tuple[Callable, Callable]] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Shape]:
        return {**self.params, **self.data} if self.params_first else {**self.data, **self.params}

    @property
    def differentiable(self) -> list[str]:
        return [k for k in self.inputs if k not in self.nondiff]

    @property
    def multi(self) -> bool:
        return self.outputs is not None and len(self.outputs) > 1

    def pack(self, outs: Sequence[Any]) -> tuple[Any, tuple[tuple[int, ...], ...] | None]:
        """The engine's one output: the output itself, or the flattened outputs joined."""
        if not self.multi:
            return outs[0], None
        return np.concatenate([np.ravel(o) for o in outs]), tuple(np.shape(o) for o in outs)

    def unpack(self, dout: np.ndarray, shapes: tuple[tuple[int, ...], ...] | None) -> list:
        """One upstream gradient per output: views into ``dout``, so that a backward writing
        into them is seen writing into its upstream gradient."""
        if shapes is None:
            return [dout]
        ends = np.cumsum([math.prod(s) for s in shapes])[:-1]
        return [part.reshape(s) for part, s in zip(np.split(dout, ends), shapes)]

    def outputs_of(self, result: Any, who: str) -> list:
        count = len(self.outputs) if self.multi else 1
        if count == 1:
            return [result]
        if isinstance(result, tuple | list) and len(result) == count:
            return list(result)
        raise TypeError(f"{who} of {self.name!r} must return the {count} outputs "
                        f"{', '.join(self.outputs)}; got {type(result).__name__}")

    def keyed(self, grads: Any, order: Sequence[str], who: str) -> dict[str, Any]:
        """The gradients keyed by input name, from a dict, a tuple in input order or one array."""
        if isinstance(grads, Mapping):
            return dict(grads)
        if isinstance(grads, tuple | list):
            if len(grads) != len(order):
                raise TypeError(f"{who} of {self.name!r} returned {len(grads)} gradients for "
                                f"the {len(order)} differentiable inputs ({', '.join(order)}); "
                                "return them in that order, or declare the others in nondiff")
            return dict(zip(order, grads))
        if len(order) != 1:
            raise TypeError(f"{who} of {self.name!r} returned one {type(grads).__name__} for "
                            f"the {len(order)} differentiable inputs ({', '.join(order)}); "
                            "return a tuple in that order")
        return {order[0]: grads}

    def reference(self, reference: Callable[..., Any]) -> Callable[..., Any]:
        """The user's reference, moved into and out of its own layout and its outputs joined."""
        names = list(self.outputs) if self.outputs else [OUT]

        by_name = _takes_names(reference, list(self.inputs))

        def wrapped(**tensors):
            # contiguous: torch's slow_conv2d backward rejects a permuted (strided) weight
            moved = {k: self.layouts[k][0](t).contiguous() if k in self.layouts else t
                     for k, t in tensors.items()}
            result = reference(**moved) if by_name else \
                reference(*(moved[k] for k in self.inputs))
            outs = list(result) if self.multi else [result]
            if len(outs) != len(names):
                raise DerivationError(f"derivation {self.name!r}: the reference returned "
                                      f"{len(outs)} outputs for {names}")
            outs = [self.layouts[n][1](o) if n in self.layouts else o
                    for n, o in zip(names, outs)]
            return torch.cat([o.reshape(-1) for o in outs]) if self.multi else outs[0]

        return wrapped

    def record(self, forward: Callable, backward: Callable, reference: Callable | None,
               fields: dict[str, Any]) -> Derivation:
        if self.outputs is not None and not self.multi:
            fields.setdefault("output", next(iter(self.outputs.values())))
        fields.setdefault("output_names", tuple(self.outputs) if self.multi else ())
        return Derivation(name=self.name, forward=forward, backward=backward,
                          reference=None if reference is None else self.reference(reference),
                          inputs=self.inputs,
                          dims=self.dims.ranges,
                          derive=self.dims.derive if self.dims.derived else None,
                          nondiff=self.nondiff, samplers=self.samplers, **fields)


def build_spec(name: str, shapes: ShapeSpec, dims: DimSpec, fields: dict[str, Any], *,
               params: ShapeSpec | None = None, params_first: bool = False,
               labels: Mapping[str, str | int] | None = None,
               fan_in: Mapping[str, str | int] | None = None,
               outputs: ShapeSpec | None = None,
               reference_shapes: ShapeSpec | None = None,
               one_hot: Sequence[str] | Mapping[str, int] | None = None) -> Spec:
    """Parse everything an adapter was given; ``fields`` keeps only what goes to the record."""
    if not isinstance(name, str) or not name:
        raise DerivationError("an adapted derivation needs a name (a non-empty string)")
    built = sorted(set(fields) & set(BUILT))
    if built:
        raise fail(name, f"{built} are built by the adapter from shapes, dims and the wrapped "
                   "functions; remove them")
    if fields.get("intermediates"):
        raise fail(name, "adapters check the gradients of inputs only (course code returns "
                   "no intermediate gradients); drop intermediates, or write a record by hand")
    parsed = parse_dims(dims, derivation=name)
    data = parse_shapes(shapes, derivation=name)
    par = parse_shapes(params, derivation=name, what="params") if params else {}
    clash = sorted(set(data) & set(par))
    if clash:
        raise fail(name, f"{clash} appear in both shapes and params; name each input once")
    outs = parse_shapes(outputs, derivation=name, what="outputs") if outputs else None
    for what, group in (("shapes", data), ("params", par), ("outputs", outs or {})):
        check_covered(group, parsed, what)
    samplers: dict[str, Callable] = {}
    nondiff = set(fields.pop("nondiff", ()))
    for key, high in (labels or {}).items():
        if key not in data:
            raise fail(name, f"labels names {key!r}, which is not in shapes; add its shape, "
                       f"e.g. '{key}: N'")
        bound = parsed.expression(high, f"labels[{key!r}]")
        samplers[key] = _integers(bound.evaluate)
        nondiff.add(key)
    axes = one_hot if isinstance(one_hot, Mapping) else {k: -1 for k in one_hot or ()}
    for key, axis in axes.items():
        if key not in data or not -len(data[key]) <= axis < len(data[key]):
            raise fail(name, f"one_hot[{key!r}] = {axis}: name an input of shapes and the axis "
                       "of its classes, e.g. one_hot={'y': -1} for y: N C")
        samplers[key] = _one_hot(axis)
        nondiff.add(key)
    for key, fan in (fan_in or {}).items():
        if key not in data and key not in par:
            raise fail(name, f"fan_in names {key!r}, which is not an input")
        samplers[key] = _scaled(parsed.expression(fan, f"fan_in[{key!r}]").evaluate)
    given = dict(fields.pop("samplers", {}))
    twice = sorted(set(given) & set(samplers))
    if twice:
        raise fail(name, f"{twice} get a sampler from samplers= and from labels/fan_in; "
                   "keep one")
    spec = Spec(name, parsed, data, par, params_first, frozenset(nondiff),
                {**samplers, **given}, outs)
    if reference_shapes:
        for key, target in parse_shapes(reference_shapes, derivation=name,
                                        what="reference_shapes").items():
            if key in spec.inputs:
                source = spec.inputs[key]
            elif outs is not None and key in outs:
                source = outs[key]
            else:
                raise fail(name, f"reference_shapes names {key!r}, which is neither an input "
                           "nor a declared output; declare the output's own layout with "
                           f"outputs='{key}: ...'")
            spec.layouts[key] = (_relayout(source, target, name, key),
                                 _relayout(target, source, name, key))
    return spec


def _relayout(source: Shape, target: Shape, derivation: str, key: str) -> Callable:
    """Tensor of shape ``source`` -> layout ``target``: the named axes permuted, and size-1
    axes written as ``1`` dropped or added (a bias (1, 1, 1, C) against a reference's (C,))."""
    named_source = tuple(d for d in source if d != 1)
    named_target = tuple(d for d in target if d != 1)
    perm = permutation(named_source, named_target, derivation=derivation, name=key)
    if named_source == source and named_target == target:
        return lambda t: t.permute(perm)

    def move(t):
        squeezed = t.reshape([n for n, d in zip(t.shape, source) if d != 1]).permute(perm)
        sizes = iter(squeezed.shape)
        return squeezed.reshape([1 if d == 1 else next(sizes) for d in target])

    return move


def _takes_names(reference: Callable, names: Sequence[str]) -> bool:
    """Whether the reference can be called with the inputs by name; otherwise (``torch.relu``,
    ``F.relu``, ``torch.matmul``) they go positionally, in the order of the inputs."""
    try:
        parameters = inspect.signature(reference).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return True
    accepted = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return set(names) <= accepted


def _integers(high: Callable[[Mapping[str, int]], int]) -> Callable:
    return lambda rng, shape, dims: rng.integers(0, high(dims), size=shape)


def _one_hot(axis: int) -> Callable:
    """One-hot float labels: along ``axis``, a single 1 at a uniformly drawn class."""
    def draw(rng, shape, dims):
        classes = rng.integers(0, shape[axis], size=shape[:axis % len(shape)]
                               + shape[axis % len(shape) + 1:])
        return np.moveaxis(np.eye(shape[axis])[classes], -1, axis)

    return draw


def _scaled(fan: Callable[[Mapping[str, int]], int]) -> Callable:
    """Uniform on +-1/sqrt(fan_in): pre-activations stay O(1) at any width (no saturation)."""
    return lambda rng, shape, dims: rng.uniform(-1.0, 1.0, size=shape) / np.sqrt(fan(dims))


def wrap_kink(fields: dict[str, Any], view: Callable[[Any], Any]) -> None:
    """``kink_distance`` reads what the user knows (their cache, layer or inputs), not ours."""
    user = fields.get("kink_distance")
    if user is not None:
        fields["kink_distance"] = lambda cache: user(view(cache))


def wrap_linear(fields: dict[str, Any], view: Callable[[Any], Any]) -> None:
    """A hand ``jvp(tangents, cache)`` or ``hvp(dout, v, cache)`` given to an adapter receives
    what the wrapped code knows (its cache, layer or inputs, as ``kink_distance`` does);
    tangents, directions and H v stay keyed by input name."""
    jvp, hvp = fields.get("jvp"), fields.get("hvp")
    if callable(jvp):
        fields["jvp"] = lambda tangents, cache: jvp(tangents, view(cache))
    if callable(hvp):
        fields["hvp"] = lambda dout, v, cache: hvp(dout, v, view(cache))


@dataclass
class AdaptedCache:
    """The cache the engine sees: the wrapped code's own cache and the output shapes."""

    user: Any
    out_shapes: tuple[tuple[int, ...], ...] | None

    def _handgrad_state(self) -> Any:
        """What backward must leave unchanged: the wrapped code's whole cache."""
        return self.user
