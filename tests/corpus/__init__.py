"""A corpus of small functions in the styles course code really uses, each with a right version
and wrong versions carrying real mistakes, wrapped by :mod:`handgrad.adapt`.

Styles (one module each): ``(out, cache)`` pairs (:mod:`.activations`, :mod:`.dense`,
:mod:`.conv`, :mod:`.recurrent`), loss-and-gradient functions (:mod:`.losses`, with
:mod:`.logistic_globals` keeping its parameters as module globals) and class layers
(:mod:`.classes`; :mod:`.stateful` for layers that keep bookkeeping in backward); code in the
styles of from-scratch libraries that needs the adapters' further options (:mod:`.scratch_dl`,
:mod:`.lenet_scratch`, :mod:`.rnn_scratch`; :mod:`.options` for the options that change the
layer's own state or random stream: ``lazy`` with ``time``, weights drawn in a constructor, a
dropout mask, an optimizer that changes a dtype). The references are in :mod:`.reference` and
:mod:`.reference_scratch`, in PyTorch.

The records live under ``tests/``, not ``derivations/``: ``handgrad check`` never lists them.
Check one with ``python -m tests.corpus NAME [--dims ... --data-seed ...]``.
"""

from __future__ import annotations

from tests.corpus import (
    activations,
    classes,
    conv,
    dense,
    lenet_scratch,
    losses,
    options,
    recurrent,
    rnn_scratch,
    scratch_dl,
    stateful,
)

STYLES = {"pair": (activations, dense, conv, recurrent), "loss": (losses,),
          "layer": (classes, stateful),
          # from-scratch libraries: several adapters each
          "scratch": (scratch_dl, lenet_scratch, rnn_scratch, options)}
RIGHT = [r for modules in STYLES.values() for m in modules for r in m.RIGHT]
WRONG = [r for modules in STYLES.values() for m in modules for r in m.WRONG]
BY_NAME = {r.name: r for r in RIGHT + WRONG}


def reproduce_command(name: str, case: str, data_seed: int) -> str:
    """The command that re-checks one case of a corpus record, from the repository root."""
    return f"python -m tests.corpus {name} --dims {case} --data-seed {data_seed}"
