"""The global state handgrad's own checking runs under, set explicitly at its entry points.

A module under test may leave torch or numpy in another state than their defaults, at import
or while it runs (``torch.set_grad_enabled(False)``, ``torch.set_default_dtype(torch.float32)``
left over from an experiment, ``np.seterr(all="raise")``). The oracles must not inherit it: a
reference run without grad mode cannot be differentiated, and one whose default dtype changed
builds its constants in another precision. So :func:`explicit_state` sets, for the time of a
check, what the oracles assume, and gives the caller's state back afterwards:

- grad mode on, inference mode off (torch.autograd differentiates the reference);
- torch's default dtype float32, its stock default, which references are written against
  (every input tensor's dtype is set explicitly anyway, :mod:`handgrad.autograd`);
- numpy's default floating-point error handling (``np.errstate``), so that a division by zero
  in handgrad's own arithmetic warns as it would in a fresh interpreter instead of raising.

Random numbers need no such care: every random draw of the engine comes from a
``np.random.Generator`` seeded by the case (:mod:`handgrad.cases`, :mod:`handgrad.oracles`),
never from the global ``np.random`` or torch state a module may have reseeded.

This is the in-process half of isolation; a module that patches numpy, torch or handgrad is
beyond its reach, which is what ``handgrad grade`` (:mod:`handgrad.grade`) is for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

NUMPY_ERRORS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}
TORCH_DEFAULT_DTYPE = torch.float32


@contextlib.contextmanager
def explicit_state() -> Iterator[None]:
    """Run the body under the state the oracles assume; restore the caller's afterwards."""
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(TORCH_DEFAULT_DTYPE)
    try:
        with torch.inference_mode(False), torch.enable_grad(), np.errstate(**NUMPY_ERRORS):
            yield
    finally:
        torch.set_default_dtype(previous_dtype)
