"""The class-layer adapter, :func:`handgrad.adapt.layer`: a layer is built, given the
engine's parameters, run forward and backward through the methods it names, and its parameter
gradients are read where it leaves them (attributes, a dict, the arguments of its own
``update`` call, or a recording optimizer handed to it). A layer that steps inside backward
is checked at learning rate 0, and its own step is replayed at a positive rate for the descent
check."""

from __future__ import annotations

import collections
import copy
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from handgrad.adapt.calls import (
    Returns,
    check_input_refs,
    keyed_by,
    module_globals,
    parse_globals,
    positional,
    uses_rate,
    with_rate,
)
from handgrad.adapt.grads import GradSlot, PassedTo, RecordingOptimizer, Slot, wrap_method
from handgrad.adapt.spec import (
    OUT,
    AdaptedCache,
    ShapeSpec,
    build_spec,
    fail,
    wrap_kink,
    wrap_linear,
)
from handgrad.adapt.unroll import Unroll
from handgrad.record import Derivation, DerivationError
from handgrad.shapes import Dims, Shape

# The engine may call ``update`` a few times per case (float64 only); remembering the last few
# backward calls of a self-updating layer is enough to replay the one it asks about.
_REPLAY_MEMORY = 8


@dataclass
class LayerCache(AdaptedCache):
    """The layer itself is the cache; backward may write its gradient slots and nothing else."""

    writes: frozenset[str] = frozenset()
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    rate: float = 0.0
    taken: dict[str, Any] = field(default_factory=dict)

    def _handgrad_state(self) -> dict[str, Any]:
        """The layer's attributes minus its gradient slots, learning rate, the recording
        optimizer and the adapter's wrapper of its update method."""
        hidden = {id(v) for v in self.taken.values()}
        return {k: v for k, v in vars(self.user).items()
                if k not in self.writes and id(v) not in hidden}


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


def _snapshot(obj: Any, keep: set[int], depth: int = 2) -> dict[str, Any]:
    """Copies of what a layer holds before its lazy warm-up forward, to be put back after it
    (see :func:`_undo`): sub-layers (objects with attributes of their own) down to ``depth``,
    other values deep-copied; the objects whose ids are in ``keep`` (the recording optimizer)
    and values that cannot be copied are left as the warm-up leaves them."""
    saved: dict[str, Any] = {}
    for k, v in vars(obj).items():
        if id(v) in keep or v is None or isinstance(v, (bool, ModuleType, type)) or callable(v):
            continue
        if depth > 0 and hasattr(v, "__dict__") and not isinstance(v, np.ndarray):
            saved[k] = (v, _snapshot(v, keep, depth - 1))
            continue
        try:
            saved[k] = (None, copy.deepcopy(v))
        except Exception:  # noqa: BLE001 - an attribute that cannot be copied keeps its value
            continue
    return saved


def _undo(obj: Any, saved: Mapping[str, Any]) -> None:
    """Put back what a lazy warm-up forward changed in the layer (a step counter, a cache it
    appended to, a hidden state, accumulators), so that the checked forward is the layer's first.
    What the warm-up made stays: attributes it created (the parameters, their gradient slots),
    keys it added to a dict, and attributes that were None or a flag before it
    (``self.W = None``, ``self.initialized``). An attribute the warm-up both creates and counts
    with (``self.t`` first set inside forward) cannot be told from a parameter it made."""
    for k, (sub, value) in saved.items():
        if sub is not None:
            if getattr(obj, k, None) is sub:
                _undo(sub, value)
            continue
        now = getattr(obj, k, None)
        if isinstance(value, dict) and isinstance(now, dict):
            # A dict keeps the keys the warm-up added (a parameter dict filled on the first
            # forward); the keys it had get their values back.
            now.update(value)
            continue
        setattr(obj, k, value)


def _names_in(obj: Any, depth: int = 2) -> set[str]:
    """The attribute names of a layer and of the objects and dicts it holds, ``depth`` down."""
    if depth < 0:
        return set()
    if isinstance(obj, Mapping):
        items = [(k, v) for k, v in obj.items() if isinstance(k, str)]
    elif hasattr(obj, "__dict__") and not isinstance(obj, (type, ModuleType, np.ndarray)):
        items = list(vars(obj).items())
    else:
        return set()
    names = {k for k, _ in items}
    for _, v in items:
        names |= _names_in(v, depth - 1)
    return names


def _known_writes(name: str, writes: Sequence[str], obj: Any) -> None:
    """Every name in ``writes`` must be an attribute the layer has once it ran forward and
    backward (or one of a sub-layer's, or a key of a dict it holds): a misspelt one would
    exempt nothing and say nothing."""
    if not writes:
        return
    have = _names_in(obj)
    unknown = [w for w in writes if w not in have]
    if unknown:
        own = sorted(k for k in vars(obj) if not k.startswith("__"))
        raise fail(name, f"writes={tuple(writes)!r} names {unknown}, which "
                   f"{type(obj).__name__} does not have after forward and backward; its "
                   f"attributes are {own}")


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


def _methods(name: str, spec: str | Sequence[str] | Mapping[str, str] | None,
             inputs: Sequence[str]) -> dict[str, str]:
    """``methods="forward_pass, backward_pass"`` or ``{"forward": ..., "backward": ...,
    "y": "set_labels"}`` (an input handed to a method of its own before forward)."""
    if spec is None:
        return {"forward": "forward", "backward": "backward"}
    if isinstance(spec, str):
        spec = re.split(r"[\s,]+", spec.strip())
    if not isinstance(spec, Mapping):
        if len(spec) != 2:
            raise fail(name, f"methods={spec!r}: give the forward and backward method names, "
                       "e.g. methods='forward_pass, backward_pass'")
        spec = dict(zip(("forward", "backward"), spec))
    out = {"forward": "forward", "backward": "backward", **spec}
    stray = sorted(set(out) - {"forward", "backward"} - set(inputs))
    if stray:
        raise fail(name, f"methods names {stray}, which are neither 'forward', 'backward' nor "
                   "inputs; map an input to the method that receives it, e.g. "
                   "methods={'y': 'set_labels'}")
    return out


def _check_methods(name: str, obj: Any, methods: Mapping[str, str]) -> None:
    for role, method in methods.items():
        if not callable(getattr(obj, method, None)):
            public = sorted(m for m in dir(obj) if not m.startswith("_")
                            and callable(getattr(obj, m, None)))
            owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
            raise fail(name, f"methods[{role!r}] = {method!r}, which {owner} does not have; "
                       f"its methods are {public}")


def layer(name: str, make_layer: Callable[..., Any], *, shapes: ShapeSpec, dims: Mapping,
          reference: Callable[..., Any] | None = None, params: ShapeSpec | None = None,
          grads: GradSlot | PassedTo = "d{name}", param_slot: str = "{name}",
          lr: str | None = None, writes: Sequence[str] = (),
          methods: str | Sequence[str] | Mapping[str, str] | None = None,
          args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
          backward_args: Sequence[Any] = (), backward_kwargs: Mapping[str, Any] | None = None,
          globals: tuple[ModuleType, Mapping[str, Any]] | None = None,  # noqa: A002
          optimizer: str | Callable[[Any, Any], Any] | None = None, lazy: bool = False,
          as_list: Sequence[str] | None = None, returns: str | Sequence[str] | None = None,
          grad_keys: str | Sequence[str] | None = None, upstream: bool = True,
          time: str | None = None, carry: Mapping[str, str] | None = None,
          labels: Mapping[str, str | int] | None = None,
          one_hot: Sequence[str] | Mapping[str, int] | None = None,
          fan_in: Mapping[str, str | int] | None = None, outputs: ShapeSpec | None = None,
          reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A class layer; see :func:`handgrad.adapt.layer` for every option."""
    spec = build_spec(name, shapes, dims, fields, params=params, labels=labels, fan_in=fan_in,
                      outputs=outputs, reference_shapes=reference_shapes, one_hot=one_hot)
    if optimizer is not None and grads != "d{name}":
        raise fail(name, f"optimizer= reads the gradients where backward hands them to the "
                   f"optimizer; drop grads={grads!r}")
    intercept = grads.method if isinstance(grads, PassedTo) else None
    grad_slot = None if intercept or optimizer is not None else \
        Slot.parse(grads, derivation=name, what="grads")
    if not isinstance(param_slot, str):
        raise fail(name, "param_slot must be a string such as '{name}' or 'params[{name}]'")
    put = Slot.parse(param_slot, derivation=name, what="param_slot")
    call_names = _methods(name, methods, list(spec.data))
    fed = [k for k in spec.data if k in call_names]
    data = [k for k in spec.data if k not in fed]
    arguments = positional(name, data, as_list)
    unroll = Unroll.parse(name, time, carry, spec, fed) if time is not None else None
    module, global_values = parse_globals(name, globals)
    check_input_refs(name, list(spec.inputs), backward_args, backward_kwargs)
    kwargs, backward_kwargs = dict(kwargs or {}), dict(backward_kwargs or {})
    wanted = _make_arguments(name, make_layer, spec.dims, spec.inputs)
    if isinstance(make_layer, type):
        _check_methods(name, make_layer, call_names)
        if intercept is not None and not callable(getattr(make_layer, intercept, None)):
            raise fail(name, f"grads=adapt.passed_to({intercept!r}), but {make_layer.__name__} "
                       f"has no method {intercept!r}; name the method its backward hands the "
                       "gradients to")
    order = [k for k in spec.data if k not in spec.nondiff]
    trained = [k for k in spec.params if k not in spec.nondiff]
    dx_keys = keyed_by(name, grad_keys, order)
    names = list(spec.outputs) if spec.outputs else [OUT]
    if not upstream and (spec.multi or fields.get("output", spec.outputs and
                                                   next(iter(spec.outputs.values()))) != ()):
        raise fail(name, "upstream=False is for a loss layer whose backward() takes no "
                   "upstream gradient: declare its scalar output, e.g. outputs='loss: ()'")
    returned = Returns.parse(name, returns, names, names)
    steps = lr is not None or optimizer is not None \
        or uses_rate(args, kwargs, backward_args, backward_kwargs, global_values)
    slots = grad_slot.attributes(trained) if grad_slot is not None else set()
    excluded = frozenset(slots) | set(writes) | ({lr} if lr else set())
    replay = _Replay()

    def globals_at(rate: float):
        return module_globals(module, with_rate(global_values, rate))

    def build(inputs: Mapping[str, np.ndarray], rate: float) -> tuple[Any, dict[str, Any]]:
        known = {k: lo for k, (lo, hi) in spec.dims.ranges.items() if lo == hi}
        for key, shape in spec.inputs.items():
            known.update((d, n) for d, n in zip(shape, np.shape(inputs[key]))
                         if isinstance(d, str))
        sizes = spec.dims.complete(known)
        obj = make_layer(**{k: sizes[k] for k in wanted})
        _check_methods(name, obj, call_names)
        taken: dict[str, Any] = {}
        # In this order: an optimizer handed over by initialize(optimizer) and a lazy first
        # forward both create parameters, which the engine's then replace.
        if optimizer is not None:
            recorder = RecordingOptimizer(name, rate, {p: inputs[p] for p in spec.params})
            taken["optimizer"] = recorder
            if callable(optimizer):
                optimizer(obj, recorder)
            else:
                for attr in re.split(r"[\s,]+", optimizer.strip()):
                    setattr(obj, attr, recorder)
        if lazy:
            before = _snapshot(obj, {id(v) for v in taken.values()})
            with globals_at(rate):
                run_forward(obj, {k: np.array(v, copy=True) for k, v in inputs.items()}, rate)
            _undo(obj, before)
        for p in spec.params:
            put.set(obj, p, inputs[p])
        if lr is not None:
            setattr(obj, lr, rate)
        if intercept is not None:
            taken["intercept"] = wrap_method(name, obj, intercept, trained)
        return obj, taken

    def run_forward(obj: Any, inputs: Mapping[str, np.ndarray], rate: float) -> tuple[Any, Any]:
        for k in fed:
            getattr(obj, call_names[k])(inputs[k])

        def step(given: Mapping[str, Any]) -> dict[str, Any]:
            result = getattr(obj, call_names["forward"])(
                *arguments(given), *with_rate(args, rate), **with_rate(kwargs, rate))
            return returned.split(result, f"layer.{call_names['forward']}")

        if unroll is not None:
            return spec.pack(unroll.forward(step, inputs))
        values = step(inputs)
        return spec.pack([values[n] for n in names])

    def run_backward(obj: Any, douts: Sequence[np.ndarray], rate: float,
                     given: Mapping[str, np.ndarray]) -> Any:
        with globals_at(rate):
            return getattr(obj, call_names["backward"])(
                *(douts if upstream else ()), *with_rate(backward_args, rate, given),
                **with_rate(backward_kwargs, rate, given))

    def input_grads(obj: Any, douts: Sequence[np.ndarray], rate: float,
                    given: Mapping[str, np.ndarray]) -> dict[str, Any]:
        def step(upstreams: Sequence[np.ndarray]) -> dict[str, Any]:
            dx = run_backward(obj, upstreams, rate, given)
            if not order:
                return {}
            if dx_keys is not None:
                return dx_keys(dx, "layer.backward")
            return spec.keyed(dx, order, "layer.backward")

        return step(douts) if unroll is None else unroll.backward(step, douts)

    def parameter_grads(cache: LayerCache) -> dict[str, Any]:
        if grad_slot is not None:
            return {p: grad_slot.get(cache.user, p) for p in trained}
        got = cache.taken["optimizer"].grads if optimizer is not None \
            else cache.taken["intercept"].grads
        missing = [p for p in trained if p not in got]
        if missing:
            where = f"the optimizer ({optimizer!r})" if optimizer is not None \
                else f"self.{intercept}(...)"
            raise DerivationError(f"derivation {name!r}: backward handed no gradient for "
                                  f"{missing} to {where}; declare parameters it does not train "
                                  "in nondiff, or check how it is handed over")
        return {p: got[p] for p in trained}

    def built(inputs: Mapping[str, np.ndarray], rate: float) -> tuple[Any, dict[str, Any]]:
        """The layer, made under a stream of its own: whatever its constructor (or a lazy
        warm-up) draws from ``np.random``, the forward then sees the global state the engine
        set for the case, the one the reference sees too (a dropout mask drawn in forward
        matches the reference's)."""
        state = np.random.get_state()
        try:
            return build(inputs, rate)
        finally:
            np.random.set_state(state)

    def adapted_forward(**inputs):
        obj, taken = built(inputs, 0.0)
        with globals_at(0.0):
            out, out_shapes = run_forward(obj, inputs, 0.0)
        return out, LayerCache(obj, out_shapes, excluded, inputs, 0.0, taken)

    def adapted_backward(dout, cache: LayerCache):
        douts = spec.unpack(dout, cache.out_shapes)
        if steps:
            call = ({k: np.array(v, copy=True) for k, v in cache.inputs.items()},
                    [np.array(d, copy=True) for d in douts])
        result = input_grads(cache.user, douts, cache.rate, cache.inputs)
        _known_writes(name, writes, cache.user)
        result.update(parameter_grads(cache))
        if not upstream:  # a loss layer's backward() gives dL/dx; the engine asks for dout dL/dx
            result = {k: douts[0] * np.asarray(g) for k, g in result.items()}
        if steps:
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
        obj, _ = built(fresh, rate)
        with globals_at(rate):
            run_forward(obj, fresh, rate)
        input_grads(obj, douts, rate, fresh)
        return {p: np.array(put.get(obj, p), copy=True) for p in trained}

    if steps:
        if grad_slot is not None and grad_slot.read is not None and not writes:
            raise fail(name, "with a callable grads, name the attributes backward writes in "
                       "writes=(...)")
        fields.setdefault("update", update)
    # The contract reads the same names, for what a sub-layer holds (``act.outputs``).
    fields["writes"] = frozenset(writes)
    wrap_kink(fields, lambda cache: cache.user)
    wrap_linear(fields, lambda cache: cache.user)
    return spec.record(adapted_forward, adapted_backward, reference, fields)
