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
    """``fn`` called from the global state ``seed``; the wrapper's ``draws`` turns True once a
    call has drawn from that state (a dropout mask), which a mismatch then names as a possible
    cause (:func:`draws_note`)."""
    seed = seed % 2**32
    seeded = np.random.RandomState(seed).get_state()

    @functools.wraps(fn)
    def call(*args, **kwargs):
        # ``seed`` costs about 2 us a call, ``set_state`` and ``get_state`` about 35 us each, and
        # the forward of a case is called thousands of times by finite differences: the state is
        # reseeded at every call, but compared only over the first calls. Code that draws from
        # the global state draws at every call, so the first ones tell.
        np.random.seed(seed)
        try:
            return fn(*args, **kwargs)
        finally:
            if not call.draws and call.watched < WATCHED_CALLS:
                call.watched += 1
                after = np.random.get_state()
                if after[2] != seeded[2] or not np.array_equal(after[1], seeded[1]):
                    call.draws = True

    call.draws = False
    call.watched = 0
    return call


WATCHED_CALLS = 8
"""How many calls of a wrapped forward or reference are watched for draws from the global state."""


def draws_note(record: Derivation) -> str:
    """What to add to a forward/reference mismatch where either draws from ``np.random``."""
    who = [what for what, fn in (("forward", record.forward), ("reference", record.reference))
           if getattr(fn, "draws", False)]
    if not who:
        return ""
    return (f"; the {' and the '.join(who)} {'draw' if len(who) == 2 else 'draws'} from NumPy's "
            "global random state, which handgrad seeds alike before each: a possible cause is "
            "that they draw different numbers, or in another order (a mask drawn before the "
            "other's weights, or of another shape)")


def seeded_per_call(record: Derivation, seed: int) -> Derivation:
    """``record`` whose forward and reference each start from the global state ``seed``."""
    return dataclasses.replace(
        record, forward=reseeded(record.forward, seed),
        reference=None if record.reference is None else reseeded(record.reference, seed))
