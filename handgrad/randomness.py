"""NumPy's global random state, made a function of the case.

Code met in the wild draws from ``np.random`` inside the layer (a dropout mask in forward,
weights in ``__init__``). handgrad calls the forward many times per case (the contract's repeat
check, finite differences, the Taylor test, the descent step), so such code would see another
mask at every call. Instead, before every call of the forward and of the reference the global
state is seeded from the case's data seed, so each call of a case draws the same numbers, and
each case others; the caller's own global state is restored after the case.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from handgrad.record import Derivation


@contextmanager
def caller_state_kept() -> Iterator[None]:
    """Restore numpy's global random state on the way out, whatever the calls inside drew."""
    saved = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(saved)


def reseeded(fn, seed: int):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        np.random.seed(seed % 2**32)
        return fn(*args, **kwargs)

    return call


def seeded_per_call(record: Derivation, seed: int) -> Derivation:
    """``record`` whose forward and reference each start from the global state ``seed``."""
    return dataclasses.replace(
        record, forward=reseeded(record.forward, seed),
        reference=None if record.reference is None else reseeded(record.reference, seed))
