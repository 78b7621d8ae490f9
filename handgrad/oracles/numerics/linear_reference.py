"""The reference's linearisations, by PyTorch: the JVP by ``torch.func.jvp`` (forward mode), and
the HVP by double backward of S = sum(dout * out) (or the record's ``hvp_reference``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from handgrad.autograd import TORCH_DTYPES, run_reference, to_tensors
from handgrad.errors import DerivationError
from handgrad.record import Derivation
from handgrad.state import explicit_state


def _tensor(a: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(TORCH_DTYPES[dtype])


@explicit_state()
def reference_jvp(record: Derivation, inputs: Mapping[str, np.ndarray],
                  tangents: Mapping[str, np.ndarray], dtype: str
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """(tangent of out, {jvp intermediate: tangent}, how): ``torch.func.jvp`` of the reference;
    where the reference uses what forward mode does not support (in-place writes into plain
    tensors, some custom functions), the double-vjp trick of ``torch.autograd.functional.jvp``
    (``how`` says which)."""
    tensors = to_tensors(record, inputs, dtype)
    names = list(record.differentiable)
    fixed = {k: t.detach() for k, t in tensors.items() if k not in names}
    wanted = list(record.jvp_intermediates)

    def f(*primals):
        out, inter = run_reference(record, {**fixed, **dict(zip(names, primals))})
        missing = sorted(set(wanted) - set(inter))
        if missing:
            raise DerivationError(f"derivation {record.name!r}: reference does not return the "
                                  f"jvp_intermediates {missing}; return them in its dict")
        return (out, *(inter[k] for k in wanted))

    primals = tuple(tensors[k].detach() for k in names)
    directions = tuple(_tensor(tangents[k], dtype) for k in names)
    try:
        _, result = torch.func.jvp(f, primals, directions)
        how = "torch.func.jvp"
    except Exception:  # noqa: BLE001 - what torch.func refuses; a broken reference fails again
        _, result = torch.autograd.functional.jvp(f, primals, directions)
        how = "torch.autograd.functional.jvp (the reference does not run under torch.func)"
    arrays = [r.detach().numpy().copy() for r in result]
    return arrays[0], dict(zip(wanted, arrays[1:])), how


@explicit_state()
def reference_hvp(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
                  v: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """{input: (H v) for it}: the Hessian of S = sum(dout * out) in all differentiable inputs,
    applied to ``v`` by double backward; or what ``hvp_reference`` computes."""
    tensors = to_tensors(record, inputs, dtype)
    names = list(record.differentiable)
    directions = {k: _tensor(v[k], dtype) for k in names}
    if record.hvp_reference is not None:
        result = record.hvp_reference(tensors, _tensor(dout, dtype), directions)
        missing = sorted(set(names) - set(result))
        if missing:
            raise DerivationError(f"derivation {record.name!r}: hvp_reference returned nothing "
                                  f"for {missing}; return a dict keyed by input name")
        return {k: torch.as_tensor(result[k]).detach().numpy().copy() for k in names}
    out, _ = run_reference(record, tensors)
    upstream = _tensor(dout, dtype)
    leaves = [tensors[k] for k in names]
    grads = torch.autograd.grad((out * upstream).sum(), leaves, create_graph=True,
                                allow_unused=True)
    inner = sum((g * directions[k]).sum() for k, g in zip(names, grads)
                if g is not None and g.requires_grad)
    if not isinstance(inner, torch.Tensor):  # S is linear in every input: H = 0
        return {k: np.zeros(np.shape(inputs[k])) for k in names}
    second = torch.autograd.grad(inner, leaves, allow_unused=True)
    return {k: (np.zeros(np.shape(inputs[k])) if s is None else s.detach().numpy().copy())
            for k, s in zip(names, second)}
