"""Custom ``torch.autograd.Function`` classes as records: the hand backward is the Function's
``backward`` reached through autograd, the hand JVP its ``jvp`` reached through forward-mode AD,
the hand HVP the double backward through the Function.

The record is an ordinary :class:`handgrad.Derivation` whose forward, backward, jvp and hvp
convert at the boundary (NumPy in, torch inside, NumPy out), so every oracle, the diagnosis, the
report and the pytest plugin treat it like any other. What only a Function can get wrong (an
upstream gradient with odd strides, ``needs_input_grad``, a double backward through a saved
intermediate, float16 and bfloat16, another device) is checked by the oracles of
:mod:`handgrad.oracles.function` and :mod:`handgrad.oracles.function_dtypes`, which find the
Function through :func:`function_of`::

    rec = adapt.function("gelu", MyGelu, shapes="x: N D", dims={"N": (1, 4), "D": (1, 5)},
                         reference=lambda x: torch.nn.functional.gelu(x))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.autograd import forward_ad

from handgrad.adapt.spec import AdaptedCache, DimSpec, ShapeSpec, Spec, build_spec, fail
from handgrad.record import Derivation

# The environment variable (set by ``handgrad check --device``) that moves the device checks of
# every Function record, in this process and in its workers.
DEVICE_VARIABLE = "HANDGRAD_DEVICE"
MARK = "_handgrad_function"


@dataclass(frozen=True)
class FunctionInfo:
    """How to call one Function, shared by the adapter and the Function oracles.

    ``arguments(tensors)`` gives ``apply``'s positional arguments from the tensors by input
    name; ``keep`` the positions of ``apply``'s outputs the engine sees (the others are
    non-differentiable: indices, masks); ``saved`` maps a name to a position in
    ``ctx.saved_tensors`` (compared with the reference's tensor of that name)."""

    name: str
    function: type
    spec: Spec
    arguments: Callable[[Mapping[str, torch.Tensor]], tuple]
    keep: tuple[int, ...] | None
    saved: Mapping[str, int] = field(default_factory=dict)
    twice: bool = True
    device: str = "cpu"
    reference: Callable[..., Any] | None = None
    low_precision: tuple[str, ...] = ("float16", "bfloat16")

    @property
    def differentiable(self) -> list[str]:
        return self.spec.differentiable

    @property
    def checked_device(self) -> str:
        """The device of the device checks: ``--device`` (its variable) over the record's."""
        return os.environ.get(DEVICE_VARIABLE) or self.device

    def tensors(self, inputs: Mapping[str, Any], dtype: torch.dtype | None = None,
                device: str = "cpu", requires: Sequence[str] | None = None
                ) -> dict[str, torch.Tensor]:
        """Tensors of ``inputs`` (arrays or tensors): floats in ``dtype`` (kept when None) on
        ``device``; leaves requiring grad for ``requires`` (default: the differentiable ones).
        Without a conversion the tensors share the arrays' memory, so that a write through them
        is seen by the engine's contract."""
        wanted = self.differentiable if requires is None else requires
        out = {}
        for k, v in inputs.items():
            t = v.detach() if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))
            if t.is_floating_point():
                t = t.to(device=device, dtype=dtype or t.dtype)
                t.requires_grad_(k in wanted)
            else:
                t = t.to(device)
            out[k] = t
        return out

    def apply(self, tensors: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The Function's outputs the engine sees, as a list."""
        result = self.function.apply(*self.arguments(tensors))
        outs = list(result) if isinstance(result, tuple | list) else [result]
        return outs if self.keep is None else [outs[i] for i in self.keep]

    def saves_intermediate(self, inputs: Mapping[str, Any]) -> bool:
        """Whether ``ctx.saved_tensors`` holds a tensor that is neither an input nor an output
        (one computed inside ``forward``, without a graph)."""
        tensors = self.tensors(inputs)
        result = self.function.apply(*self.arguments(tensors))
        outs = list(result) if isinstance(result, tuple | list) else [result]
        node = next((o.grad_fn for o in outs if o.grad_fn is not None), None)
        if node is None:
            return False
        known = {(t.data_ptr(), tuple(t.shape)) for t in [*tensors.values(), *outs]}
        return any((t.data_ptr(), tuple(t.shape)) not in known for t in node.saved_tensors
                   if isinstance(t, torch.Tensor))

    def vjp(self, tensors: Mapping[str, torch.Tensor], douts: Sequence[torch.Tensor],
            outs: Sequence[torch.Tensor] | None = None, create_graph: bool = False
            ) -> dict[str, torch.Tensor | None]:
        """The Function's backward through autograd: dS/d input for every input that requires
        grad (None where the Function returned None)."""
        outs = self.apply(tensors) if outs is None else outs
        wrt = [k for k in self.differentiable if tensors[k].requires_grad]
        pairs = [(o, d) for o, d in zip(outs, douts) if o.requires_grad]
        if not wrt or not pairs:
            return {k: None for k in wrt}
        grads = torch.autograd.grad([o for o, _ in pairs], [tensors[k] for k in wrt],
                                    [d for _, d in pairs], retain_graph=True,
                                    create_graph=create_graph, allow_unused=True)
        return dict(zip(wrt, grads))


def function_of(record: Derivation) -> FunctionInfo | None:
    """The Function behind a record made by :func:`function`, or None."""
    return getattr(record.forward, MARK, None)


def once_differentiable(function: type) -> bool:
    """Whether the Function's backward is wrapped by ``torch.autograd.function.once_differentiable``
    (its double backward raises on purpose)."""
    code = getattr(getattr(function, "backward", None), "__code__", None)
    return code is not None and code.co_name == "wrapper" \
        and code.co_filename.replace("\\", "/").endswith("torch/autograd/function.py")


def _defines_jvp(function: type) -> bool:
    return getattr(function, "jvp", None) is not getattr(torch.autograd.Function, "jvp", None)


@dataclass
class FunctionCache(AdaptedCache):
    """The engine's cache: the Function's node (``user``, its ``ctx``), the leaves and the
    outputs. What backward must not change: the saved tensors and the outputs."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    outs: list[torch.Tensor] = field(default_factory=list)

    def _handgrad_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"output {i}": o.detach().cpu().numpy().copy()
                                 for i, o in enumerate(self.outs)}
        if self.user is None:
            return state
        try:
            saved = self.user.saved_tensors
        except RuntimeError as exc:  # torch refuses to unpack a saved tensor written in place
            return {**state, "ctx.saved_tensors": f"unreadable: {exc}"}
        state.update({f"ctx.saved_tensors[{i}]": t.detach().cpu().numpy().copy()
                      for i, t in enumerate(saved) if isinstance(t, torch.Tensor)})
        return state


def function(name: str, function_class: type, *, shapes: ShapeSpec, dims: DimSpec,
             reference: Callable[..., Any] | None = None, args: Sequence[Any] = (),
             call: Callable[..., tuple] | None = None, outputs: ShapeSpec | None = None,
             nondiff_outputs: Sequence[int] = (), saved: Mapping[str, int] | None = None,
             double_backward: bool | None = None, device: str = "cpu",
             low_precision: Sequence[str] = ("float16", "bfloat16"),
             labels: Mapping[str, str | int] | None = None,
             fan_in: Mapping[str, str | int] | None = None, **fields: Any) -> Derivation:
    """A custom ``torch.autograd.Function`` as a record.

    ``apply`` gets the tensors in the order of ``shapes`` then ``args`` (non-tensor arguments),
    or ``call(**tensors)``'s tuple when the order differs (``call=lambda x, w: (x, 0.5, w)``).
    ``outputs`` names the outputs the engine checks (several are joined, as for
    :func:`handgrad.adapt.pair`); ``nondiff_outputs`` gives the positions, in ``apply``'s
    result, of outputs marked non-differentiable (indices), which are left out; the reference
    returns the checked outputs only. ``saved={"p": 0}`` names ``ctx.saved_tensors[0]`` "p":
    the reference returns ``(out, {"p": tensor})`` and a wrong forward value is localised to the
    first saved tensor that differs. ``double_backward`` (default: unless the backward is
    ``once_differentiable``) makes the record's ``hvp`` the double backward through the
    Function. ``device`` is where the device checks run by default (``--device`` overrides).
    ``low_precision`` names the dtypes besides float64 and float32 the Function is checked in
    (``()`` for one that runs NumPy inside, which has no bfloat16).
    Integer inputs (``labels``) and inputs in ``nondiff`` reach ``apply`` as tensors that do
    not require grad, so ``ctx.needs_input_grad`` is False for them.
    """
    if not (isinstance(function_class, type) and issubclass(function_class,
                                                            torch.autograd.Function)):
        raise fail(name, f"function() takes a torch.autograd.Function subclass, got "
                   f"{function_class!r}")
    saved = dict(saved or {})
    spec = build_spec(name, shapes, dims, fields, labels=labels, fan_in=fan_in, outputs=outputs)
    kept = _kept_outputs(name, spec, nondiff_outputs)
    if saved and reference is None:
        raise fail(name, "saved names tensors to compare with the reference's, but there is no "
                   "reference; give one returning (out, {name: tensor})")
    twice = not once_differentiable(function_class) if double_backward is None \
        else bool(double_backward)
    extra = tuple(args)

    def arguments(tensors: Mapping[str, torch.Tensor]) -> tuple:
        if call is not None:
            return tuple(call(**tensors))
        return (*(tensors[k] for k in spec.data), *extra)

    user_reference = reference
    if saved and reference is not None:
        reference = _outputs_only(reference)
    unknown = sorted(set(low_precision) - {"float16", "bfloat16"})
    if unknown:
        raise fail(name, f"low_precision names {unknown}; choose from 'float16', 'bfloat16'")
    info = FunctionInfo(name, function_class, spec, arguments, kept, saved, twice, device,
                        user_reference, tuple(low_precision))

    def adapted_forward(**inputs):
        tensors = info.tensors(inputs)
        outs = info.apply(tensors)
        out, out_shapes = spec.pack([o.detach().numpy() for o in outs])
        node = next((o.grad_fn for o in outs if o.grad_fn is not None), None)
        return out, FunctionCache(node, out_shapes, tensors, outs)

    def adapted_backward(dout, cache: FunctionCache):
        douts = [torch.from_numpy(np.asarray(d)) for d in spec.unpack(dout, cache.out_shapes)]
        grads = info.vjp(cache.tensors, douts, cache.outs)
        return {k: (torch.zeros_like(cache.tensors[k]) if grads.get(k) is None else grads[k]
                    ).detach().numpy().copy() for k in info.differentiable}

    setattr(adapted_forward, MARK, info)
    if _defines_jvp(function_class):
        fields.setdefault("jvp", _jvp(info))
    if twice:
        fields.setdefault("hvp", _hvp(info))
    return spec.record(adapted_forward, adapted_backward, reference, fields)


def _kept_outputs(name: str, spec: Spec, nondiff_outputs: Sequence[int]) -> tuple[int, ...] | None:
    if not nondiff_outputs:
        return None
    if spec.outputs is None:
        raise fail(name, "nondiff_outputs needs outputs= naming the checked outputs")
    total = len(spec.outputs) + len(nondiff_outputs)
    bad = [i for i in nondiff_outputs if not 0 <= i < total]
    if bad:
        raise fail(name, f"nondiff_outputs {bad} are not positions among apply's {total} outputs")
    return tuple(i for i in range(total) if i not in set(nondiff_outputs))


def _outputs_only(reference: Callable[..., Any]) -> Callable[..., Any]:
    """The reference without its dict of named saved tensors (the Function oracle reads it)."""
    def outputs(**tensors):
        result = reference(**tensors)
        return result[0] if isinstance(result, tuple) and len(result) == 2 \
            and isinstance(result[1], Mapping) else result
    return outputs


def _jvp(info: FunctionInfo) -> Callable:
    """The record's jvp: the Function's ``jvp`` through forward-mode AD on dual tensors."""
    def jvp(tangents: Mapping[str, np.ndarray], cache: FunctionCache) -> np.ndarray:
        with forward_ad.dual_level():
            duals = {k: (forward_ad.make_dual(t.detach(), torch.from_numpy(
                np.asarray(tangents[k], dtype=np.asarray(t.detach()).dtype)))
                if k in tangents else t.detach()) for k, t in cache.tensors.items()}
            outs = info.apply(duals)
            parts = []
            for o in outs:
                tangent = forward_ad.unpack_dual(o).tangent
                parts.append((torch.zeros_like(o) if tangent is None else tangent)
                             .detach().numpy().copy())
        return info.spec.pack(parts)[0]
    return jvp


def _hvp(info: FunctionInfo) -> Callable:
    """The record's hvp: the double backward through the Function (its backward differentiated
    by autograd), of S = sum(dout * out)."""
    def hvp(dout: np.ndarray, v: Mapping[str, np.ndarray], cache: FunctionCache
            ) -> dict[str, np.ndarray]:
        tensors = info.tensors({k: t.detach() for k, t in cache.tensors.items()})
        douts = [torch.from_numpy(np.asarray(d)) for d in info.spec.unpack(dout, cache.out_shapes)]
        with torch.enable_grad():
            return {k: h.detach().numpy().copy() for k, h in
                    double_backward(info, tensors, douts, v).items()}
    return hvp


def double_backward(info: FunctionInfo, tensors: Mapping[str, torch.Tensor],
                    douts: Sequence[torch.Tensor], v: Mapping[str, Any]
                    ) -> dict[str, torch.Tensor]:
    """H v for S = sum(dout * out) through the Function: its backward run with a graph, then
    differentiated along ``v`` (arrays or tensors keyed by differentiable input)."""
    grads = info.vjp(tensors, douts, create_graph=True)
    keys = [k for k in info.differentiable if grads.get(k) is not None and grads[k].requires_grad]
    like = {k: tensors[k] for k in info.differentiable}
    zero = {k: torch.zeros_like(t) for k, t in like.items()}
    if not keys:
        return zero
    directions = [torch.as_tensor(np.asarray(v[k]) if not isinstance(v[k], torch.Tensor)
                                  else v[k], dtype=like[k].dtype, device=like[k].device)
                  for k in keys]
    hv = torch.autograd.grad([grads[k] for k in keys], list(like.values()), directions,
                             allow_unused=True)
    return {k: (zero[k] if h is None else h) for k, h in zip(like, hv)}
