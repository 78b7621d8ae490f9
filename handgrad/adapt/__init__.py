"""Adapters: code written in the usual course conventions, checked as it is, in one call each.

``pair``   ``out, cache = forward(x, w, b, *args)``; ``dx, dw, db = backward(dout, cache)``
``layer``  ``layer.forward(x)``, ``dx = layer.backward(dout)``, parameter gradients left in
           ``layer.dW`` or ``layer.grads["W"]``, handed to ``self.update(...)`` or to an
           optimizer; a layer whose backward also steps is checked at learning rate 0 and its
           own step compared with SGD (:mod:`handgrad.adapt.layers`)
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
order, size-1 axes written ``1`` dropped or added): the adapter moves the reference's inputs
into it and its outputs back. The reference is called with the inputs by name when its
signature names them all, positionally in the order of the inputs otherwise (``torch.relu``).

Conventions beyond these (:mod:`handgrad.adapt.calls`): ``returns="out, _, cache"`` for
functions returning more than they are checked on, ``grad_keys="d{name}"`` for gradients in a
dict with a prefix (or a tuple of names for another order), ``backward_args``, ``as_list`` for
inputs passed as one list, ``globals=(module, {...})`` for hyper-parameters held in module
globals, :data:`LR`, the place of a learning rate in any of these, and :func:`input`, an
input itself as an argument of the backward.

The adapters never copy or change the caller's arrays: inputs reach the wrapped code as the
engine made them, and ``args``/``kwargs`` are deep-copied per call (course code stores running
statistics in its ``bn_param`` dict). Each ``cache`` handed to the engine has a method
``_handgrad_state()`` giving what backward must not change (for a layer: its attributes other
than its gradient slots and learning rate).

May import the records (:mod:`handgrad.record`, :mod:`handgrad.shapes`) and nothing above them:
an adapter makes a record; the oracles and the checking import the adapters, never the other
way round.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from handgrad.adapt.calls import (
    CACHE,
    LR,
    InputRef,
    Returns,
    check_input_refs,
    keyed_by,
    module_globals,
    parse_globals,
    positional,
    with_rate,
)
from handgrad.adapt.functions import function
from handgrad.adapt.grads import passed_to
from handgrad.adapt.layers import layer as _layer
from handgrad.adapt.spec import (
    OUT,
    AdaptedCache,
    DimSpec,
    ShapeSpec,
    build_spec,
    fail,
    wrap_kink,
    wrap_linear,
)
from handgrad.record import Derivation

__all__ = ["LR", "bernoulli", "function", "input", "layer", "loss", "pair", "passed_to",
           "quantized"]

Globals = tuple[ModuleType, Mapping[str, Any]]


def bernoulli(p: float) -> Callable[[np.random.Generator, tuple[int, ...], Mapping], np.ndarray]:
    """A sampler of boolean masks, True with probability ``p`` (a sequence mask)."""
    return lambda rng, shape, dims: rng.uniform(size=shape) < p


def quantized(levels: int) -> Callable[[np.random.Generator, tuple[int, ...], Mapping],
                                       np.ndarray]:
    """A sampler of values ``k / levels`` for integers ``|k| <= levels``: exact ties and exact
    zeros, where max-pool and relu have kinks."""
    return lambda rng, shape, dims: rng.integers(-levels, levels + 1, size=shape) / levels


@dataclass
class PairCache(AdaptedCache):
    """The wrapped code's cache (None when its forward returns none), and the inputs for
    ``adapt.input(name)`` arguments of its backward."""

    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)


def pair(name: str, forward: Callable[..., tuple], backward: Callable[..., Any], *,
         shapes: ShapeSpec, dims: DimSpec, reference: Callable[..., Any] | None = None,
         params: ShapeSpec | None = None, args: Sequence[Any] = (),
         kwargs: Mapping[str, Any] | None = None, backward_args: Sequence[Any] = (),
         backward_kwargs: Mapping[str, Any] | None = None, globals: Globals | None = None,  # noqa: A002
         as_list: Sequence[str] | None = None, returns: str | Sequence[str] | None = None,
         grad_keys: str | Sequence[str] | None = None,
         labels: Mapping[str, str | int] | None = None,
         one_hot: Sequence[str] | Mapping[str, int] | None = None,
         fan_in: Mapping[str, str | int] | None = None, outputs: ShapeSpec | None = None,
         reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A forward/backward pair: ``out, cache = forward(*inputs, *args, **kwargs)`` with the
    inputs in the order of ``shapes`` (then ``params``, passed as one dict: Ng's
    ``rnn_cell_forward(xt, a_prev, parameters)``), and
    ``backward(dout, cache, *backward_args, **backward_kwargs)`` returning the gradients of the
    differentiable inputs in that order (one array when there is one), or keyed as
    ``grad_keys`` says.

    With ``outputs`` naming k outputs, ``forward`` returns them then the cache
    (``next_h, next_c, cache``) and ``backward(dnext_h, dnext_c, cache)`` takes one upstream
    gradient each; ``returns="a_next, yt_pred, cache"`` says what a forward returning more
    gives, names other than the outputs and ``cache`` being left unchecked.
    ``labels={"y": "C"}`` declares integer inputs in [0, C), not differentiated;
    ``one_hot={"y": 0}`` one-hot float labels along axis 0 (a sequence of names: the last axis);
    ``fan_in={"w": "D"}`` draws ``w`` uniform on +-1/sqrt(D). ``kink_distance`` receives the
    wrapped code's cache.
    """
    kwargs, backward_kwargs = dict(kwargs or {}), dict(backward_kwargs or {})
    spec = build_spec(name, shapes, dims, fields, params=params, labels=labels, fan_in=fan_in,
                      outputs=outputs, reference_shapes=reference_shapes, one_hot=one_hot)
    order = spec.differentiable
    names = list(spec.outputs) if spec.multi else [next(iter(spec.outputs or {OUT: ()}))]
    returned = Returns.parse(name, returns, [*names, CACHE], names) \
        if returns is not None else None
    cached = returned is None or CACHE in returned.names
    grads_of = keyed_by(name, grad_keys, order)
    arguments = positional(name, list(spec.data), as_list)
    module, global_values = parse_globals(name, globals)
    check_input_refs(name, list(spec.inputs), backward_args, backward_kwargs)

    def split(result: Any) -> tuple[list, Any]:
        if returned is not None:
            values = returned.split(result, "forward")
            return [values[n] for n in names], values.get(CACHE)
        count = len(names)
        if isinstance(result, tuple) and len(result) == count + 1:
            return list(result[:count]), result[count]
        if isinstance(result, tuple) and len(result) == 2 and count > 1:
            return spec.outputs_of(result[0], "forward"), result[1]
        raise TypeError(f"forward of {name!r} must return "
                        + ("(out, cache)" if count == 1 else
                           f"the {count} outputs {', '.join(names)} then the cache")
                        + f"; got {type(result).__name__} (returns='...' says what it returns)")

    def adapted_forward(**inputs):
        given = arguments(inputs)
        if spec.params:
            given.append({p: inputs[p] for p in spec.params})
        with module_globals(module, with_rate(global_values, 0.0)):
            result = forward(*given, *with_rate(args, 0.0), **with_rate(kwargs, 0.0))
        outs, cache = split(result)
        out, out_shapes = spec.pack(outs)
        return out, PairCache(cache, out_shapes, inputs)

    def adapted_backward(dout, cache: PairCache):
        with module_globals(module, with_rate(global_values, 0.0)):
            grads = backward(*spec.unpack(dout, cache.out_shapes),
                             *((cache.user,) if cached else ()),
                             *with_rate(backward_args, 0.0, cache.inputs),
                             **with_rate(backward_kwargs, 0.0, cache.inputs))
        if grads_of is not None:
            return grads_of(grads, "backward")
        return spec.keyed(grads, order, "backward")

    wrap_kink(fields, lambda cache: cache.user)
    wrap_linear(fields, lambda cache: cache.user)
    return spec.record(adapted_forward, adapted_backward, reference, fields)


def input(name: str) -> InputRef:  # noqa: A001
    """The input ``name`` itself as an argument of a backward: ``backward_args=(adapt.input("x"),)``
    for ``relu_backward(dout, x)``."""
    return InputRef(name)


def layer(name: str, make_layer: Callable[..., Any], *, shapes: ShapeSpec, dims: DimSpec,
          **options: Any) -> Derivation:
    """A class layer: ``layer = make_layer(**dims it names)``, parameters set on it through
    ``param_slot`` (``"{name}"``: ``layer.W``; ``"params[{name}]"``: ``layer.params["W"]``),
    ``out = layer.forward(*inputs, *args, **kwargs)``,
    ``dx = layer.backward(dout, *backward_args, **backward_kwargs)`` (a tuple for several
    inputs) and the parameter gradients read through ``grads``.

    ``grads``: ``"d{name}"`` (``layer.dW``), ``"grads[{name}]"``, a callable
    ``(layer, name) -> array``, or ``adapt.passed_to("update")`` for gradients the backward
    hands to the layer's own method (``self.update(dW, db)``: positionally in the order of
    ``params``, or by keyword ``W=``/``dW=``; the method runs as written).
    ``optimizer="W_opt, b_opt"`` (attributes) or ``optimizer=lambda layer, opt:
    layer.initialize(opt)``: the layer is handed a recording optimizer; whatever method the
    backward calls on it (``self.W = self.W_opt.update(self.W, dW)``), the gradient is kept
    under the parameter's name and the parameter comes back stepped by SGD at the adapter's
    rate (a new array; the parameter itself at rate 0).
    ``methods="forward_pass, backward_pass"`` names the two methods; a dict may also hand an
    input to a method of its own before forward (``{"y": "set_labels"}``).
    ``lr="lr"`` names the attribute of a layer whose backward also applies an SGD step;
    :data:`LR` in ``args``/``kwargs``/``backward_args``/``backward_kwargs``/``globals`` marks
    where else a rate goes (``backward_args=(adapt.LR,)`` for ``backward(dout, lr)``). Such a
    layer (and one with an ``optimizer``) is checked at rate 0, and the record's ``update``
    replays that very backward at a positive rate so the engine compares the layer's own step
    with SGD. ``writes`` names other attributes backward may legitimately change (needed with
    a callable ``grads``). ``lazy=True``: the layer creates its parameters on its first forward,
    so a first forward runs on copies before the engine's parameters are set.
    ``as_list=("a", "b")``, ``returns="out, _"``, ``grad_keys`` and ``globals`` as for
    :func:`pair`. ``kink_distance`` receives the layer.
    """
    return _layer(name, make_layer, shapes=shapes, dims=dims, **options)


@dataclass
class LossCache(AdaptedCache):
    """The gradients the loss function returned with its value (``user``), and its inputs."""

    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)


REDUCTIONS = {"sum": np.sum, "mean": np.mean}


def _reduced(reference: Callable[..., Any], reduce: str) -> Callable[..., Any]:
    """The reference with its elementwise loss summed (or averaged) as the user's code does;
    ``functools.wraps`` keeps its signature, so it is called by name or positionally as
    before."""
    @functools.wraps(reference)
    def wrapped(*args, **kwargs):
        value = reference(*args, **kwargs)
        return value.sum() if reduce == "sum" else value.mean()

    return wrapped


def loss(name: str, fn: Callable[..., Any], *, shapes: ShapeSpec, dims: DimSpec,
         reference: Callable[..., Any] | None = None, params: ShapeSpec | None = None,
         globals_of: ModuleType | None = None, args: Sequence[Any] = (),
         kwargs: Mapping[str, Any] | None = None, globals: Globals | None = None,  # noqa: A002
         gradient: Callable[..., Any] | None = None, reduce: str | None = None,
         returns: str | Sequence[str] | None = None,
         grad_keys: str | Sequence[str] | None = None,
         labels: Mapping[str, str | int] | None = None,
         one_hot: Sequence[str] | Mapping[str, int] | None = None,
         fan_in: Mapping[str, str | int] | None = None,
         reference_shapes: ShapeSpec | None = None, **fields: Any) -> Derivation:
    """A loss and its gradient in one call, ``value, grads = fn(...)``:

    - no ``params``: ``fn(*inputs, *args, **kwargs)``, inputs in the order of ``shapes``, grads
      one array or a tuple in that order (``loss, dx = softmax_loss(x, y)``);
    - ``params``: ``fn(params_dict, *inputs, *args, **kwargs)``, grads a dict (or a tuple: the
      parameters, then the differentiable inputs);
    - ``params`` with ``globals_of=module``: the parameters are set as ``module.<name>`` for each
      call and restored after, and ``fn(*inputs, ...)`` reads them from there.

    ``gradient=g``: the value and the gradients come from two functions taking the same
    arguments (``loss.loss(y, p)`` and ``loss.gradient(y, p)``). ``reduce="sum"`` (or
    ``"mean"``): the value is elementwise (one loss per entry or sample) and the gradients are
    those of its sum (mean), as a training loop that sums the losses uses them; the reference
    returns the elementwise loss too, and both are reduced. ``returns="loss, _, grads"`` for a
    function returning more (an accuracy); ``grad_keys="d{name}"`` for a dict of gradients with
    a prefix; ``one_hot`` as for :func:`pair`.

    The engine differentiates ``dout * value``; the adapter's backward returns ``dout * grad``.
    ``kink_distance`` receives the inputs by name.
    """
    kwargs = dict(kwargs or {})
    spec = build_spec(name, shapes, dims, fields, params=params, params_first=True, labels=labels,
                      fan_in=fan_in, reference_shapes=reference_shapes, one_hot=one_hot)
    if globals_of is not None and not spec.params:
        raise fail(name, "globals_of needs params: name the module globals the loss reads, "
                   "e.g. params='W: D C, b: C'")
    if reduce is not None and reduce not in REDUCTIONS:
        raise fail(name, f"reduce={reduce!r}: 'sum' or 'mean', the reduction the gradients "
                   "the code returns belong to")
    if gradient is not None and returns is not None:
        raise fail(name, "with gradient=, fn returns the value alone; drop returns=")
    order = spec.differentiable
    returned = Returns.parse(name, returns, ["loss", "grads"], ["loss", "grads"])
    grads_of = keyed_by(name, grad_keys, order)
    module, global_values = parse_globals(name, globals)
    fields.setdefault("output", ())

    def adapted_forward(**inputs):
        data = [inputs[k] for k in spec.data]
        extra, named = with_rate(args, 0.0), with_rate(kwargs, 0.0)
        values = {p: inputs[p] for p in spec.params}
        if globals_of is not None:
            data_first, call = data, values
        else:
            data_first, call = ([values, *data] if spec.params else data), {}
        with module_globals(globals_of, call), \
                module_globals(module, with_rate(global_values, 0.0)):
            if gradient is not None:
                result = (fn(*data_first, *extra, **named),
                          gradient(*data_first, *with_rate(args, 0.0),
                                   **with_rate(kwargs, 0.0)))
            else:
                result = fn(*data_first, *extra, **named)
        got = returned.split(result, "the loss function")
        value, grads = got["loss"], got["grads"]
        if reduce is not None:
            value = REDUCTIONS[reduce](value)
        keyed = grads_of(grads, "the loss function") if grads_of is not None \
            else spec.keyed(grads, order, "the loss function")
        return np.asarray(value), LossCache(keyed, None, inputs)

    def adapted_backward(dout, cache: LossCache):
        return {k: dout * g for k, g in cache.user.items()}

    wrap_kink(fields, lambda cache: cache.inputs)
    wrap_linear(fields, lambda cache: cache.inputs)
    if reduce is not None and reference is not None:
        reference = _reduced(reference, reduce)
    return spec.record(adapted_forward, adapted_backward, reference, fields)
