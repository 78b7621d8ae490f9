"""The autograd oracle: the record's PyTorch reference, differentiated by torch.autograd."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from handgrad.record import Derivation, DerivationError
from handgrad.state import explicit_state

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class OutputShapeError(DerivationError):
    """The NumPy forward and the reference return outputs of different shapes."""

    def __init__(self, record: Derivation, hand_shape: tuple, ref_out: np.ndarray):
        self.hand_shape, self.ref_out = tuple(hand_shape), ref_out
        super().__init__(f"derivation {record.name!r}: the NumPy forward returns shape "
                         f"{self.hand_shape}, the reference {ref_out.shape}")


def to_tensors(record: Derivation, inputs: Mapping[str, np.ndarray], dtype: str) -> dict:
    """Copies of ``inputs`` as tensors; differentiable ones are leaves that require grad."""
    tensors = {}
    for name, arr in inputs.items():
        t = torch.from_numpy(np.array(arr, copy=True))
        if t.is_floating_point():
            t = t.to(TORCH_DTYPES[dtype])
            t.requires_grad_(name not in record.nondiff)
        tensors[name] = t
    return tensors


def run_reference(record: Derivation, tensors: dict) -> tuple[torch.Tensor, dict]:
    """The reference's output and its named intermediates, checked against the record."""
    result = record.reference(**tensors)
    out, inter = result if isinstance(result, tuple) else (result, {})
    if not isinstance(out, torch.Tensor):
        raise DerivationError(f"derivation {record.name!r}: reference must return a tensor or "
                              f"(tensor, {{name: tensor}}), got {type(out).__name__}")
    missing = sorted(set(record.intermediates) - set(inter))
    if missing:
        raise DerivationError(f"derivation {record.name!r}: reference does not return the "
                              f"intermediates {missing}; return them in its dict")
    return out, inter


@explicit_state()
def autograd_oracle(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
                    dtype: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(out, {key: dS/dkey}) for S = sum(dout * out), every differentiable input and intermediate.

    An input the reference never uses gets an exact zero, which is its true gradient.
    """
    tensors = to_tensors(record, inputs, dtype)
    out, inter = run_reference(record, tensors)
    keys = list(record.differentiable) + list(record.intermediates)
    wrt = [tensors[k] for k in record.differentiable] + [inter[k] for k in record.intermediates]
    upstream = torch.as_tensor(np.array(dout), dtype=out.dtype)
    if tuple(upstream.shape) != tuple(out.shape):
        raise OutputShapeError(record, tuple(upstream.shape), out.detach().numpy().copy())
    grads = torch.autograd.grad((out * upstream).sum(), wrt, allow_unused=True)
    result = {
        k: (np.zeros(tuple(w.shape)) if g is None else g.detach().numpy().copy())
        for k, w, g in zip(keys, wrt, grads)
    }
    return out.detach().numpy().copy(), result
