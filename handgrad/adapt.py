"""Adapters: code written in the usual course conventions, checked as it is, in one call each.

``pair``   ``out, cache = forward(x, w, b, *args)``; ``dx, dw, db = backward(dout, cache)``
``layer``  ``layer.forward(x)``, ``dx = layer.backward(dout)``, parameter gradients left in
           ``layer.dW`` or ``layer.grads["W"]``; a layer whose backward also steps is checked at
           learning rate 0 and its own step compared with SGD
``loss``   ``loss, dx = f(x, y)``; ``loss, grads = f(params, X, y)``; parameters as module globals

Each returns a :class:`handgrad.Derivation`; every other keyword argument goes to the record
(``samplers``, ``tolerances``, ``zero_grads``, ``skip``, ``expect``, ``erratum``, ...). Shapes and
dims are written compactly (:mod:`handgrad.shapes`)::

    rec = adapt.pair("affine", affine_forward, affine_backward,
                     shapes="x: N D, w: D M, b: M", dims={"N": (1, 4), "D": (1, 5), "M": (1, 3)},
                     reference=lambda x, w, b: x @ w + b)

``outputs="next_h: N H, next_c: N H"`` declares several outputs: the engine sees their flattened
concatenation, and ``dout`` is split back into one upstream gradient per output.
``reference_shapes="x: N C H W"`` states the reference's layout (same dimension names, another
order): the adapter permutes the reference's inputs into it and its outputs back.

The adapters never copy or change the caller's arrays: inputs reach the wrapped code as the
engine made them, and ``args``/``kwargs`` are deep-copied per call (course code stores running
statistics in its ``bn_param`` dict). Each ``cache`` handed to the engine has a method
``_handgrad_state()`` giving what backward must not change (for a layer: its attributes other
than its gradient slots and learning rate).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from handgrad import adapt_spec
from handgrad.adapt_spec import AdaptedCache, DimSpec, ShapeSpec, build_spec, fail, wrap_kink
from handgrad.record import Derivation
from handgrad.shapes import Dims, Shape

GradSlot = str | Callable[[Any, str], np.ndarray]
# The engine may call ``update`` a few times per case (float64 only); remembering the last few
# backward calls of a self-updating layer is enough to replay the one it asks about.
_REPLAY_MEMORY = 8


def bernoulli(p: float) -> Callable[[np.random.Generator, tuple[int, ...], Mapping], np.ndarray]:
    """A sampler of boolean masks, True with probability ``p`` (a sequence mask)."""
    return lambda rng, shape, dims: rng.uniform(size=shape) < p


def quantized(levels: int) -> Callable[[np.random.Generator, tuple[int, ...], Mapping],
                                       np.ndarray]:
    """A sampler of values ``k / levels`` for integers ``|k| <= levels``: exact ties and exact
    zeros, where max-pool and relu have kinks."""
    return lambda rng, shape, dims: rng.integers(-levels, levels + 1, size=shape) / levels


def pair(name: str, forward: Callable[..., tuple], backward: Callable[..., Any], *,
         shapes: ShapeSpec, dims: DimSpec, reference: Callable[..., Any] | None = None,
         args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
         labels: Mapping[str, str | int] | None = None,
         fan_in: Mapping[str, str | int] | None = None, outputs: ShapeSpec | None = None,
         reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A forward/backward pair: ``out, cache = forward(*inputs, *args, **kwargs)`` with the
    inputs in the order of ``shapes``, and ``backward(dout, cache)`` returning the gradients of
    the differentiable inputs in that order (one array when there is one).

    With ``outputs`` naming k outputs, ``forward`` returns them then the cache
    (``next_h, next_c, cache``) and ``backward(dnext_h, dnext_c, cache)`` takes one upstream
    gradient each. ``labels={"y": "C"}`` declares integer inputs in [0, C), not differentiated;
    ``fan_in={"w": "D"}`` draws ``w`` uniform on +-1/sqrt(D). ``kink_distance`` receives the
    wrapped code's cache.
    """
    kwargs = dict(kwargs or {})
    spec = build_spec(name, shapes, dims, fields, labels=labels, fan_in=fan_in, outputs=outputs,
                      reference_shapes=reference_shapes)
    order = spec.differentiable
    count = len(spec.outputs) if spec.multi else 1

    def adapted_forward(**inputs):
        result = forward(*(inputs[k] for k in spec.data), *copy.deepcopy(args),
                         **copy.deepcopy(kwargs))
        if isinstance(result, tuple) and len(result) == count + 1:
            outs, cache = list(result[:count]), result[count]
        elif isinstance(result, tuple) and len(result) == 2 and count > 1:
            outs, cache = spec.outputs_of(result[0], "forward"), result[1]
        else:
            raise TypeError(f"forward of {name!r} must return "
                            + ("(out, cache)" if count == 1 else
                               f"the {count} outputs {', '.join(spec.outputs)} then the cache")
                            + f"; got {type(result).__name__}")
        out, out_shapes = spec.pack(outs)
        return out, AdaptedCache(cache, out_shapes)

    def adapted_backward(dout, cache: AdaptedCache):
        grads = backward(*spec.unpack(dout, cache.out_shapes), cache.user)
        return spec.keyed(grads, order, "backward")

    wrap_kink(fields, lambda cache: cache.user)
    adapt_spec.wrap_linear(fields, lambda cache: cache.user)
    return spec.record(adapted_forward, adapted_backward, reference, fields)


@dataclass(frozen=True)
class _Slot:
    """Where a layer keeps one named tensor: an attribute (``"d{name}"``) or a dict entry
    (``"grads[{name}]"``), or a callable ``(layer, name) -> array`` for reading."""

    text: str
    read: Callable[[Any, str], Any] | None = None

    PATTERN = re.compile(r"(?P<attr>[A-Za-z_{][\w{}]*)(\[(?P<key>[^\]]+)\])?\Z")

    @classmethod
    def parse(cls, spec: GradSlot, *, derivation: str, what: str) -> _Slot:
        if callable(spec):
            return cls(f"<{what} callable>", spec)
        match = cls.PATTERN.match(spec) if isinstance(spec, str) else None
        if not match or "{name}" not in spec:
            raise fail(derivation, f"{what}={spec!r}: write where each tensor lives with "
                       "{name} for its name, e.g. 'd{name}' (layer.dW), 'grads[{name}]' "
                       "(layer.grads['W']), or pass a callable (layer, name) -> array")
        return cls(spec)

    def _where(self, name: str) -> tuple[str, str | None]:
        match = self.PATTERN.match(self.text)
        key = match["key"]
        return (match["attr"].format(name=name),
                None if key is None else key.format(name=name).strip("'\""))

    def get(self, layer: Any, name: str) -> Any:
        if self.read is not None:
            return self.read(layer, name)
        attr, key = self._where(name)
        return getattr(layer, attr) if key is None else getattr(layer, attr)[key]

    def set(self, layer: Any, name: str, value: np.ndarray) -> None:
        attr, key = self._where(name)
        if key is None:
            setattr(layer, attr, value)
        else:
            if not isinstance(getattr(layer, attr, None), dict):
                setattr(layer, attr, {})
            getattr(layer, attr)[key] = value

    def attributes(self, names: Sequence[str]) -> set[str]:
        """The layer attributes this slot writes for ``names`` (none known for a callable)."""
        return set() if self.read is not None else {self._where(n)[0] for n in names}


@dataclass
class LayerCache(AdaptedCache):
    """The layer itself is the cache; backward may write its gradient slots and nothing else."""

    writes: frozenset[str] = frozenset()
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)

    def _handgrad_state(self) -> dict[str, Any]:
        """The layer's attributes minus its gradient slots and learning rate."""
        return {k: v for k, v in vars(self.user).items() if k not in self.writes}


class _Replay:
    """The last few checked backward calls of a self-updating layer, keyed by the values of its
    parameters and of the gradients it produced, so that ``update`` can run the layer's own
    step on the same data."""

    def __init__(self) -> None:
        self.calls: collections.OrderedDict[str, tuple] = collections.OrderedDict()

    @staticmethod
    def key(params: Mapping[str, np.ndarray], grads: Mapping[str, Any]) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for group in (params, grads):
            for k in sorted(group):
                a = np.ascontiguousarray(group[k])
                digest.update(f"{k}{a.dtype}{a.shape}".encode())
                digest.update(a.tobytes())
        return digest.hexdigest()

    def remember(self, key: str, call: tuple) -> None:
        self.calls[key] = call
        while len(self.calls) > _REPLAY_MEMORY:
            self.calls.popitem(last=False)


def _make_arguments(name: str, make_layer: Callable, dims: Dims, shapes: Mapping[str, Shape]
                    ) -> list[str]:
    """The dimensions ``make_layer`` takes by name; each must be recoverable from the arrays."""
    try:
        signature = inspect.signature(make_layer)
    except (TypeError, ValueError):
        return []
    recoverable = {d for s in shapes.values() for d in s if isinstance(d, str)}
    recoverable |= {k for k, (lo, hi) in dims.ranges.items() if lo == hi}
    for derived, expr in dims.derived.items():
        if expr.names <= recoverable:
            recoverable.add(derived)
    wanted = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in recoverable:
            wanted.append(p.name)
        elif p.default is p.empty:
            raise fail(name, f"make_layer needs {p.name!r}, which is not a dimension the "
                       "input shapes (or a fixed size) determine; wrap it, e.g. "
                       "make_layer=lambda D, M: Linear(D, M)")
    return wanted


def layer(name: str, make_layer: Callable[..., Any], *, shapes: ShapeSpec, dims: DimSpec,
          reference: Callable[..., Any] | None = None, params: ShapeSpec | None = None,
          grads: GradSlot = "d{name}", param_slot: str = "{name}", lr: str | None = None,
          writes: Sequence[str] = (), labels: Mapping[str, str | int] | None = None,
          fan_in: Mapping[str, str | int] | None = None, outputs: ShapeSpec | None = None,
          reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A class layer: ``layer = make_layer(**dims it names)``, parameters set on it through
    ``param_slot`` (``"{name}"``: ``layer.W``; ``"params[{name}]"``: ``layer.params["W"]``),
    ``out = layer.forward(*inputs)``, ``dx = layer.backward(dout)`` (a tuple for several inputs)
    and the parameter gradients read through ``grads`` (``"d{name}"``, ``"grads[{name}]"`` or a
    callable ``(layer, name) -> array``).

    ``lr="lr"`` names the attribute of a layer whose backward also applies an SGD step: the
    gradients are checked at rate 0, and the record's ``update`` replays that very backward at
    a positive rate so the engine compares the layer's own step with SGD. ``writes`` names other
    attributes backward may legitimately change (needed with a callable ``grads``).
    ``kink_distance`` receives the layer.
    """
    spec = build_spec(name, shapes, dims, fields, params=params, labels=labels, fan_in=fan_in,
                      outputs=outputs, reference_shapes=reference_shapes)
    grad_slot = _Slot.parse(grads, derivation=name, what="grads")
    if not isinstance(param_slot, str):
        raise fail(name, "param_slot must be a string such as '{name}' or 'params[{name}]'")
    put = _Slot.parse(param_slot, derivation=name, what="param_slot")
    wanted = _make_arguments(name, make_layer, spec.dims, spec.inputs)
    order = [k for k in spec.data if k not in spec.nondiff]
    trained = [k for k in spec.params if k not in spec.nondiff]
    excluded = frozenset(grad_slot.attributes(trained)) | set(writes) | ({lr} if lr else set())
    replay = _Replay()

    def build(inputs: Mapping[str, np.ndarray], rate: float) -> Any:
        known = {k: lo for k, (lo, hi) in spec.dims.ranges.items() if lo == hi}
        for key, shape in spec.inputs.items():
            known.update((d, n) for d, n in zip(shape, np.shape(inputs[key]))
                         if isinstance(d, str))
        sizes = spec.dims.complete(known)
        obj = make_layer(**{k: sizes[k] for k in wanted})
        for p in spec.params:
            put.set(obj, p, inputs[p])
        if lr is not None:
            setattr(obj, lr, rate)
        return obj

    def run_forward(obj: Any, inputs: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
        outs = spec.outputs_of(obj.forward(*(inputs[k] for k in spec.data)), "layer.forward")
        return spec.pack(outs)

    def adapted_forward(**inputs):
        obj = build(inputs, 0.0)
        out, out_shapes = run_forward(obj, inputs)
        return out, LayerCache(obj, out_shapes, excluded, inputs)

    def adapted_backward(dout, cache: LayerCache):
        douts = spec.unpack(dout, cache.out_shapes)
        if lr is not None:
            call = ({k: np.array(v, copy=True) for k, v in cache.inputs.items()},
                    [np.array(d, copy=True) for d in douts])
        dx = cache.user.backward(*douts)
        result = spec.keyed(dx, order, "layer.backward") if order else {}
        result.update({p: grad_slot.get(cache.user, p) for p in trained})
        if lr is not None:
            replay.remember(replay.key({p: call[0][p] for p in trained},
                                       {p: result[p] for p in trained}), call)
        return result

    def update(params: dict, grads: dict, rate: float) -> dict:
        """The layer's own step at ``rate``, replayed on the data of the backward that produced
        ``grads``."""
        call = replay.calls.get(replay.key({p: params[p] for p in trained},
                                           {p: grads[p] for p in trained}))
        if call is None:
            raise fail(name, "update was given parameters and gradients that no checked "
                       "backward of this layer produced; the layer's own step can only be "
                       "replayed on data it has seen")
        inputs, douts = call
        fresh = {k: v.copy() for k, v in inputs.items()}
        obj = build(fresh, rate)
        run_forward(obj, fresh)
        obj.backward(*douts)
        return {p: np.array(put.get(obj, p), copy=True) for p in trained}

    if lr is not None:
        if grad_slot.read is not None and not writes:
            raise fail(name, "with a callable grads, name the attributes backward writes in "
                       "writes=(...)")
        fields.setdefault("update", update)
    wrap_kink(fields, lambda cache: cache.user)
    adapt_spec.wrap_linear(fields, lambda cache: cache.user)
    return spec.record(adapted_forward, adapted_backward, reference, fields)


@dataclass
class LossCache(AdaptedCache):
    """The gradients the loss function returned with its value (``user``), and its inputs."""

    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)


@contextlib.contextmanager
def _module_globals(module: ModuleType, values: Mapping[str, np.ndarray]):
    """Set ``module.<name>`` for the call, then restore what was there (or remove it)."""
    absent = object()
    saved = {k: getattr(module, k, absent) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            if v is absent:
                delattr(module, k)
            else:
                setattr(module, k, v)


def loss(name: str, fn: Callable[..., tuple], *, shapes: ShapeSpec, dims: DimSpec,
         reference: Callable[..., Any] | None = None, params: ShapeSpec | None = None,
         globals_of: ModuleType | None = None, args: Sequence[Any] = (),
         kwargs: Mapping[str, Any] | None = None, labels: Mapping[str, str | int] | None = None,
         fan_in: Mapping[str, str | int] | None = None,
         reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A loss and its gradient in one call, ``value, grads = fn(...)``:

    - no ``params``: ``fn(*inputs, *args, **kwargs)``, inputs in the order of ``shapes``, grads
      one array or a tuple in that order (``loss, dx = softmax_loss(x, y)``);
    - ``params``: ``fn(params_dict, *inputs, *args, **kwargs)``, grads a dict (or a tuple: the
      parameters, then the differentiable inputs);
    - ``params`` with ``globals_of=module``: the parameters are set as ``module.<name>`` for each
      call and restored after, and ``fn(*inputs, ...)`` reads them from there.

    The engine differentiates ``dout * value``; the adapter's backward returns ``dout * grad``.
    ``kink_distance`` receives the inputs by name.
    """
    kwargs = dict(kwargs or {})
    spec = build_spec(name, shapes, dims, fields, params=params, params_first=True, labels=labels,
                      fan_in=fan_in, reference_shapes=reference_shapes)
    if globals_of is not None and not spec.params:
        raise fail(name, "globals_of needs params: name the module globals the loss reads, "
                   "e.g. params='W: D C, b: C'")
    order = spec.differentiable
    fields.setdefault("output", ())

    def adapted_forward(**inputs):
        data = [inputs[k] for k in spec.data]
        extra, named = copy.deepcopy(args), copy.deepcopy(kwargs)
        values = {p: inputs[p] for p in spec.params}
        if globals_of is not None:
            with _module_globals(globals_of, values):
                result = fn(*data, *extra, **named)
        elif spec.params:
            result = fn(values, *data, *extra, **named)
        else:
            result = fn(*data, *extra, **named)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"{name!r}: the loss function must return (loss, gradients); got "
                            f"{type(result).__name__}")
        value, grads = result
        return np.asarray(value), LossCache(spec.keyed(grads, order, "the loss function"),
                                            None, inputs)

    def adapted_backward(dout, cache: LossCache):
        return {k: dout * g for k, g in cache.user.items()}

    wrap_kink(fields, lambda cache: cache.inputs)
    adapt_spec.wrap_linear(fields, lambda cache: cache.inputs)
    return spec.record(adapted_forward, adapted_backward, reference, fields)
