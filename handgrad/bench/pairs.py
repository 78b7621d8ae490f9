"""What is timed: for one record at one size and dtype, a hand callable and the autograd
callable it is measured against, on the same inputs and upstream gradient.

Four kinds, where the record has them:

- ``backward``: the hand forward and backward (NumPy, arrays in and out) against the reference's
  forward and ``torch.autograd.grad``;
- ``jvp``: the hand forward and ``jvp`` against ``torch.func.jvp`` of the reference;
- ``hvp``: the hand forward and ``hvp`` against the reference's double backward (or the record's
  ``hvp_reference``, for a curvature product that is not the Hessian);
- ``function``: a custom autograd Function (``adapt.function``) as it is used, ``apply`` on
  tensors and ``torch.autograd.grad`` through its hand backward, against autograd of its
  plain-torch reference, in torch alone.

Each pair checks its two results agree (shape or key set, and for Functions the values), or the
times would compare different work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from handgrad.adapt.functions import function_of
from handgrad.autograd import run_reference, to_tensors
from handgrad.cases import Case, build_inputs, full_dims, upstream
from handgrad.record import Derivation

KINDS = ("backward", "jvp", "hvp", "function")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Pair:
    """Two callables doing the same work, hand and autograd, and their group's name."""

    record: str
    kind: str
    dims: Mapping[str, int]
    dtype: str
    flops: float | None
    hand: Callable[[], Any]
    autograd: Callable[[], Any]
    agree: Callable[[Any, Any], None]

    @property
    def group(self) -> str:
        kind = "" if self.kind == "backward" else f" {self.kind}"
        prefix = "function " if self.kind == "function" else ""
        kind = "" if self.kind == "function" else kind
        return f"{prefix}{self.record}{kind} {self.dtype} " + dims_text(self.dims)

    def extra_info(self, side: str) -> dict[str, Any]:
        return {"side": side, "dtype": self.dtype, "flops": self.flops, "kind": self.kind,
                "record": self.record, "dims": dict(self.dims)}


def dims_text(dims: Mapping[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in dims.items())


def kinds_of(record: Derivation) -> list[str]:
    """The kinds a record can be timed in (see the module docstring)."""
    return [k for k in KINDS if k == "backward" or (k == "function" and function_of(record))
            or (k in ("jvp", "hvp") and getattr(record, k) is not None)]


def _case(record: Derivation, dims: Mapping[str, int], dtype: str):
    case = Case.of(dict(dims), 0, "bench")
    inputs = build_inputs(record, case, dtype)
    return case, inputs


def _same_count(hand, auto) -> None:
    if len(hand) != len(auto):
        raise AssertionError(f"hand gives {len(hand)} gradients, autograd {len(auto)}")


def backward(record: Derivation, dims: Mapping[str, int], dtype: str) -> Pair:
    case, inputs = _case(record, dims, dtype)
    out, _ = record.forward(**inputs)
    dout = upstream(np.shape(out), case, dtype)
    tensors = to_tensors(record, inputs, dtype)
    leaves = [tensors[k] for k in record.differentiable]
    up = torch.from_numpy(np.array(dout))

    def hand():
        _, cache = record.forward(**inputs)
        return record.backward(dout, cache)

    def autograd():
        ref_out, _ = run_reference(record, tensors)
        return torch.autograd.grad((ref_out * up).sum(), leaves)

    def agree(h, a) -> None:
        missing = set(record.differentiable) - set(h)
        if missing:
            raise AssertionError(f"the hand backward gives no gradient of {sorted(missing)}")
        _same_count(leaves, a)

    return Pair(record.name, "backward", dims, dtype, _flops(record, dims), hand, autograd,
                agree)


def directions(record: Derivation, inputs: Mapping[str, np.ndarray], dtype: str
               ) -> dict[str, np.ndarray]:
    """A seeded direction for every differentiable input, uniform on [-1, 1)."""
    rng = np.random.default_rng(1)
    return {k: rng.uniform(-1.0, 1.0, np.shape(inputs[k])).astype(dtype)
            for k in record.differentiable}


def linearisation(record: Derivation, dims: Mapping[str, int], dtype: str, product: str) -> Pair:
    """``product`` "jvp" or "hvp" (see the module docstring)."""
    case, inputs = _case(record, dims, dtype)
    out, _ = record.forward(**inputs)
    dout = upstream(np.shape(out), case, dtype)
    v = directions(record, inputs, dtype)
    names = record.differentiable
    tensors = to_tensors(record, inputs, dtype)
    v_tensors = {k: torch.from_numpy(v[k]) for k in names}
    up = torch.from_numpy(np.array(dout))

    def hand():
        _, cache = record.forward(**inputs)
        return record.jvp(v, cache) if product == "jvp" else record.hvp(dout, v, cache)

    if product == "jvp":
        fixed = {k: t for k, t in tensors.items() if k not in names}

        def program(*args):
            ref_out, _ = run_reference(record, {**fixed, **dict(zip(names, args))})
            return ref_out

        primals = tuple(tensors[k].detach() for k in names)
        tangents = tuple(v_tensors[k] for k in names)

        def autograd():
            return torch.func.jvp(program, primals, tangents)[1]

        def agree(h, a) -> None:
            if isinstance(h, tuple):  # (tangent, {intermediate: tangent}): jvp_intermediates
                h = h[0]
            if tuple(a.shape) != tuple(np.shape(out)) or np.shape(h) != np.shape(out):
                raise AssertionError(f"jvp shapes: hand {np.shape(h)}, torch {tuple(a.shape)},"
                                     f" output {np.shape(out)}")
    else:
        if record.hvp_reference is not None:
            def autograd():
                return record.hvp_reference(tensors, up, v_tensors)
        else:
            leaves = [tensors[k] for k in names]

            def autograd():
                ref_out, _ = run_reference(record, tensors)
                grads = torch.autograd.grad((ref_out * up).sum(), leaves, create_graph=True)
                inner = sum((g * v_tensors[k]).sum() for g, k in zip(grads, names))
                return torch.autograd.grad(inner, leaves)

        def agree(h, a) -> None:
            if set(h) != set(names):
                raise AssertionError(f"the hand hvp gives {sorted(h)}, not {sorted(names)}")
            _same_count(names, a)

    return Pair(record.name, product, dims, dtype, None, hand, autograd, agree)


def function(record: Derivation, dims: Mapping[str, int], dtype: str) -> Pair:
    info = function_of(record)
    case, inputs = _case(record, dims, dtype)
    tensors = info.tensors(inputs)
    leaves = [tensors[k] for k in record.differentiable]
    with torch.no_grad():
        out, _ = record.forward(**inputs)
    up = torch.from_numpy(np.array(upstream(np.shape(out), case, dtype))).reshape(np.shape(out))

    def joined(outs):
        return torch.cat([o.reshape(-1) for o in outs]).reshape(up.shape) if len(outs) > 1 \
            else outs[0]

    def hand():
        return torch.autograd.grad((joined(info.apply(tensors)) * up).sum(), leaves)

    def autograd():
        result = record.reference(**tensors)
        ref_out = result[0] if isinstance(result, tuple) else result
        return torch.autograd.grad((ref_out * up).sum(), leaves)

    def agree(h, a) -> None:
        # The tolerance is float32's (1e-4 relative to each tensor's largest entry), loose for
        # float64, and right for float32 sums of the sizes benchmarked (a few thousand terms).
        for g, c in zip(h, a):
            scale = float(c.abs().max())
            np.testing.assert_allclose(g.numpy(), c.numpy(), rtol=1e-4, atol=1e-4 * scale)

    return Pair(record.name, "function", dims, dtype, None, hand, autograd, agree)


def _flops(record: Derivation, dims: Mapping[str, int]) -> float | None:
    return record.flops(full_dims(record, dims)) if record.flops else None


def pair(record: Derivation, dims: Mapping[str, int], dtype: str, kind: str) -> Pair:
    if kind == "backward":
        return backward(record, dims, dtype)
    if kind == "function":
        return function(record, dims, dtype)
    return linearisation(record, dims, dtype, kind)


def plan(records: Iterable[Derivation], dims: Mapping[str, int] | None = None,
         dtypes: Iterable[str] = DTYPES, kinds: Iterable[str] | None = None
         ) -> list[tuple[Derivation, dict[str, int], str, str]]:
    """(record, dims, dtype, kind) for every record with ``bench`` dims (or every record, at
    ``dims`` given on the command line, merged over each record's own first bench dims), in
    record order, then size, kind and dtype."""
    out = []
    for record in records:
        sizes = [dict(d) for d in record.bench]
        if dims:
            sizes = [{**(sizes[0] if sizes else {}), **dims}]
        for size in sizes:
            for kind in kinds_of(record):
                if kinds is not None and kind not in kinds:
                    continue
                out += [(record, size, dtype, kind) for dtype in dtypes]
    return out
