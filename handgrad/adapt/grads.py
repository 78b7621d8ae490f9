"""Where a layer leaves its parameter gradients, for :func:`handgrad.adapt.layer`: in a slot
(``layer.dW``, ``layer.grads["W"]``, a callable), in the arguments of its own ``update`` call
(:func:`passed_to`), or with an optimizer it was handed (:class:`RecordingOptimizer`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from handgrad.adapt.spec import fail
from handgrad.record import DerivationError

GradSlot = str | Callable[[Any, str], np.ndarray]


@dataclass(frozen=True)
class PassedTo:
    """``grads=adapt.passed_to("update")``: the layer hands its gradients to one of its own
    methods (``self.update(dW, db)``), positionally in the order of ``params`` or by keyword
    (``W=`` or ``dW=``). The adapter records them there and lets the method run."""

    method: str


def passed_to(method: str) -> PassedTo:
    """Gradients read from the arguments of the layer's own call ``self.<method>(dW, db)``."""
    return PassedTo(method)


@dataclass(frozen=True)
class Slot:
    """Where a layer keeps one named tensor: an attribute (``"d{name}"``) or a dict entry
    (``"grads[{name}]"``), or a callable ``(layer, name) -> array`` for reading."""

    text: str
    read: Callable[[Any, str], Any] | None = None

    PATTERN = re.compile(r"(?P<attr>[A-Za-z_{][\w{}]*)(\[(?P<key>[^\]]+)\])?\Z")

    @classmethod
    def parse(cls, spec: GradSlot, *, derivation: str, what: str) -> Slot:
        if callable(spec):
            return cls(f"<{what} callable>", spec)
        match = cls.PATTERN.match(spec) if isinstance(spec, str) else None
        if not match or "{name}" not in spec:
            raise fail(derivation, f"{what}={spec!r}: write where each tensor lives with "
                       "{name} for its name, e.g. 'd{name}' (layer.dW), 'grads[{name}]' "
                       "(layer.grads['W']), or pass a callable (layer, name) -> array"
                       + (", or adapt.passed_to('update') for gradients handed to a method"
                          if what == "grads" else ""))
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


class RecordingOptimizer:
    """The optimizer the adapter hands a layer that passes its gradients to one
    (``self.W = self.W_opt.update(self.W, dW)``): it keeps each gradient under the name of the
    parameter it came with, and returns the parameter stepped by plain SGD at the adapter's
    rate (0 while gradients are checked: the parameter itself). Any method name works
    (``update``, ``step``, ...); copies of it are itself, so per-parameter copies
    (``copy.copy(optimizer)``) all record here."""

    def __init__(self, derivation: str, rate: float, params: Mapping[str, np.ndarray]) -> None:
        self._derivation, self._rate = derivation, rate
        self._names = {id(v): k for k, v in params.items()}
        self.grads: dict[str, Any] = {}

    def _record(self, param: Any, grad: Any, *_: Any, **__: Any) -> Any:
        name = self._names.get(id(param))
        if name is None:
            raise DerivationError(
                f"derivation {self._derivation!r}: the optimizer was handed an array that is "
                f"none of the parameters set on the layer ({', '.join(self._names.values())}); "
                "pass the parameter itself (optimizer.update(self.W, dW)), not a copy")
        if name in self.grads:
            raise DerivationError(f"derivation {self._derivation!r}: the optimizer was "
                                  f"handed a gradient for {name!r} twice in one backward")
        self.grads[name] = grad
        return param if self._rate == 0 else param - self._rate * np.asarray(grad)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return self._record

    def __copy__(self) -> RecordingOptimizer:
        return self

    def __deepcopy__(self, memo: dict) -> RecordingOptimizer:
        return self


class Interception:
    """The layer's own ``update`` method, wrapped on the instance: its gradient arguments are
    kept, by position in the order of the parameters or by keyword (``W=`` or ``dW=``), and
    the method runs as written."""

    def __init__(self, method: Callable, trained: Sequence[str]) -> None:
        self.method, self.trained = method, list(trained)
        self.grads: dict[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.grads.update(zip(self.trained, args))
        for key, value in kwargs.items():
            bare = key[1:] if key.startswith("d") and key[1:] in self.trained else key
            if bare in self.trained:
                self.grads[bare] = value
        return self.method(*args, **kwargs)


def wrap_method(name: str, obj: Any, method: str, trained: Sequence[str]) -> Interception:
    own = getattr(obj, method, None)
    if not callable(own):
        raise fail(name, f"grads=adapt.passed_to({method!r}), but {type(obj).__name__} has no "
                   f"method {method!r}; name the method its backward hands the gradients to")
    wrapper = Interception(own, trained)
    setattr(obj, method, wrapper)
    return wrapper
