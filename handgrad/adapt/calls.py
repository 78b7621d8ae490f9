"""How the adapters of :mod:`handgrad.adapt` call code that does not follow the course
conventions exactly: where the learning rate goes (:data:`LR`), module globals set for a call,
which values a function returns (``returns=``), how its gradients are keyed (``grad_keys=``)
and inputs passed together as one list (``as_list=``)."""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from handgrad.adapt.spec import fail
from handgrad.record import DerivationError

CACHE = "cache"
IGNORED = "_"


class _Rate:
    """Where a learning rate goes: the adapter puts 0 there while it checks the gradients and
    a positive rate when it replays the code's own step (``adapt.LR``)."""

    def __repr__(self) -> str:
        return "adapt.LR"

    def __deepcopy__(self, memo: dict) -> _Rate:
        return self


LR = _Rate()


@dataclass(frozen=True)
class InputRef:
    """``adapt.input("x")``: the input ``x`` itself, as an argument of the backward
    (``relu_backward(dout, x)``)."""

    name: str

    def __repr__(self) -> str:
        return f"adapt.input({self.name!r})"


def _placeholders(values: Sequence[Any]) -> list[Any]:
    found: list[Any] = []

    def walk(v: Any) -> None:
        if v is LR or isinstance(v, InputRef):
            found.append(v)
        elif isinstance(v, tuple | list):
            for x in v:
                walk(x)
        elif isinstance(v, Mapping):
            for x in v.values():
                walk(x)

    walk(list(values))
    return found


def uses_rate(*values: Any) -> bool:
    """Whether :data:`LR` stands anywhere in these arguments (tuples, lists, dict values)."""
    return any(v is LR for v in _placeholders(values))


def check_input_refs(derivation: str, inputs: Sequence[str], *values: Any) -> None:
    """Every ``adapt.input(name)`` names an input."""
    unknown = sorted({v.name for v in _placeholders(values) if isinstance(v, InputRef)}
                     - set(inputs))
    if unknown:
        raise fail(derivation, f"adapt.input names {unknown}, which are not inputs; name one "
                   f"of {list(inputs)}")


def with_rate(value: Any, rate: float, inputs: Mapping[str, Any] | None = None) -> Any:
    """A fresh copy of ``value`` (course code keeps state in its param dicts) with every
    :data:`LR` replaced by ``rate`` and every ``adapt.input(name)`` by that input (the array
    itself: a backward writing into it is seen doing so)."""
    if value is LR:
        return rate
    if isinstance(value, InputRef):
        return inputs[value.name]
    if isinstance(value, tuple | list):
        return type(value)(with_rate(v, rate, inputs) for v in value)
    if isinstance(value, Mapping):
        return {k: with_rate(v, rate, inputs) for k, v in value.items()}
    return copy.deepcopy(value)


@contextlib.contextmanager
def module_globals(module: ModuleType | None, values: Mapping[str, Any]):
    """Set ``module.<name>`` for the call, then restore what was there (or remove it)."""
    if module is None or not values:
        yield
        return
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


def parse_globals(name: str, spec: tuple[ModuleType, Mapping[str, Any]] | None
                  ) -> tuple[ModuleType | None, dict[str, Any]]:
    """``globals=(module, {"learning_rate": adapt.LR, "reg": 0.1})``."""
    if spec is None:
        return None, {}
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], ModuleType)
            and isinstance(spec[1], Mapping) and spec[1]):
        raise fail(name, "globals= takes (module, {name: value}), e.g. globals=(mylib, "
                   "{'learning_rate': adapt.LR}) for a rate the code reads from mylib")
    module, values = spec
    missing = sorted(k for k in values if not hasattr(module, k))
    if missing:
        raise fail(name, f"globals= names {missing}, which module {module.__name__!r} does "
                   "not define; give the names the code reads (a misspelt global would be "
                   "set and never read)")
    return module, dict(values)


@dataclass(frozen=True)
class Returns:
    """What a wrapped function returns, by position: the checked outputs (by their names), the
    ``cache``, the gradients (``grads``, for a loss) and ``_`` or any other name for values that
    are not checked (an accuracy, predictions)."""

    derivation: str
    names: tuple[str, ...]
    single: bool

    @classmethod
    def parse(cls, derivation: str, spec: str | Sequence[str] | None, default: Sequence[str],
              required: Sequence[str]) -> Returns:
        if spec is None:
            return cls(derivation, tuple(default), len(default) == 1)
        names = tuple(re.split(r"[\s,]+", spec.strip())) if isinstance(spec, str) \
            else tuple(spec)
        missing = [r for r in required if r not in names]
        if missing:
            raise fail(derivation, f"returns={spec!r} does not name {missing}; name each "
                       f"returned value in order ({', '.join(default)} by default), with _ for "
                       "those not checked, e.g. returns='" + ", ".join([*default[:1], "_",
                                                                       *default[1:]]) + "'")
        return cls(derivation, names, len(names) == 1)

    def split(self, result: Any, who: str) -> dict[str, Any]:
        if self.single:
            return {self.names[0]: result}
        if not isinstance(result, tuple | list) or len(result) != len(self.names):
            got = f"{len(result)} values" if isinstance(result, tuple | list) \
                else type(result).__name__
            raise DerivationError(f"derivation {self.derivation!r}: {who} returned {got}; "
                                  f"expected {len(self.names)} ({', '.join(self.names)}); say "
                                  "what it returns with returns='...'")
        return dict(zip(self.names, result))


def keyed_by(derivation: str, grad_keys: str | Sequence[str] | None,
             order: Sequence[str]) -> Callable[[Any, str], Any] | None:
    """``grad_keys="d{name}"``: the gradients come in a dict whose keys carry a prefix
    (``dW``, ``dWax``); ``grad_keys=("h", "x", "W")``: in a tuple in that order. Returns a
    function turning what the code returned into gradients keyed by input name, or None."""
    if grad_keys is None:
        return None
    if isinstance(grad_keys, str):
        if "{name}" not in grad_keys:
            raise fail(derivation, f"grad_keys={grad_keys!r}: write the key of each gradient "
                       "with {name} for the input's name, e.g. 'd{name}' for dW, dWax")
        wanted = {grad_keys.format(name=k): k for k in order}

        def from_dict(grads: Any, who: str) -> dict[str, Any]:
            if not isinstance(grads, Mapping):
                raise DerivationError(f"derivation {derivation!r}: grad_keys={grad_keys!r} "
                                      f"expects a dict from {who}, got {type(grads).__name__}")
            absent = [key for key in wanted if key not in grads]
            if absent:
                raise DerivationError(
                    f"derivation {derivation!r}: grad_keys={grad_keys!r} looks for "
                    f"{absent} in what {who} returned ({sorted(map(str, grads))}); fix the "
                    "pattern, or the input names in shapes/params")
            return {wanted[key]: grads[key] for key in wanted}

        return from_dict
    names = list(grad_keys)
    unknown = [k for k in names if k not in order]
    if unknown or len(set(names)) != len(order):
        raise fail(derivation, f"grad_keys={tuple(names)}: give each differentiable input "
                   f"({', '.join(order)}) once, in the order the backward returns them"
                   + (f"; {unknown} are not differentiable inputs" if unknown else ""))

    def from_tuple(grads: Any, who: str) -> dict[str, Any]:
        if not isinstance(grads, tuple | list) or len(grads) != len(names):
            raise DerivationError(f"derivation {derivation!r}: {who} must return "
                                  f"{len(names)} gradients ({', '.join(names)}); got "
                                  f"{type(grads).__name__}")
        return dict(zip(names, grads))

    return from_tuple


def positional(derivation: str, data: Sequence[str], as_list: Sequence[str] | None
               ) -> Callable[[Mapping[str, np.ndarray]], list]:
    """The positional arguments: the inputs in the order of ``shapes``, those of ``as_list``
    passed together as one list at the place of the first of them."""
    if not as_list:
        return lambda inputs: [inputs[k] for k in data]
    grouped = list(as_list)
    unknown = [k for k in grouped if k not in data]
    if unknown:
        raise fail(derivation, f"as_list names {unknown}, which are not in shapes; list the "
                   "inputs passed together as one list, e.g. as_list=('a', 'b')")
    first = min(data.index(k) for k in grouped)

    def build(inputs: Mapping[str, np.ndarray]) -> list:
        out: list = []
        for i, k in enumerate(data):
            if i == first:
                out.append([inputs[g] for g in grouped])
            elif k not in grouped:
                out.append(inputs[k])
        return out

    return build
