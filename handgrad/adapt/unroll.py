"""A cell stepped through time by a loop the user writes, for :func:`handgrad.adapt.layer`
(``time="T"``, ``carry={"h0": "h"}``)::

    h = h0
    for t in range(T):
        h = cell.forward(x[t], h)            # the outputs stacked: h: (T, N, H)
    dh_prev = 0
    for t in reversed(range(T)):
        dx[t], dh_prev = cell.backward(dh[t] + dh_prev)

Inputs whose shape starts with the time dimension are sliced along it; each carried input is
replaced by the output it names from the step before, and its gradient flows back into that
output's upstream gradient; other inputs are passed whole at every step and their gradients
summed. The cell accumulates its parameter gradients over the steps (``self.dWx += ...``), as a
cell stepped by such a loop must; they are read after the last backward step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from handgrad.adapt.spec import Spec, fail


@dataclass(frozen=True)
class Unroll:
    data: tuple[str, ...]
    timed: tuple[str, ...]
    carry: Mapping[str, str]
    outputs: tuple[str, ...]

    @classmethod
    def parse(cls, name: str, time: str, carry: Mapping[str, str] | None, spec: Spec,
              fed: Sequence[str]) -> Unroll:
        if time not in spec.dims.names:
            raise fail(name, f"time={time!r} is not a dimension; name the dimension the loop "
                       "runs over, e.g. time='T' with x: T N D")
        if spec.outputs is None or any(s[:1] != (time,) for s in spec.outputs.values()):
            raise fail(name, f"time={time!r}: declare the outputs stacked over time, e.g. "
                       f"outputs='h: {time} N H'")
        data = tuple(k for k in spec.data if k not in fed)
        timed = tuple(k for k in data if spec.data[k][:1] == (time,))
        if not timed:
            raise fail(name, f"time={time!r}: no input has {time!r} as its first axis; give "
                       f"the inputs read one step at a time the shape '{time} ...'")
        carry = dict(carry or {})
        for key, output in carry.items():
            if key not in data or key in timed or output not in spec.outputs:
                raise fail(name, f"carry={{{key!r}: {output!r}}}: map an input given once "
                           "(the initial state) to the output that replaces it at the next "
                           f"step, e.g. carry={{'h0': 'h'}}; inputs: {list(data)}, outputs: "
                           f"{list(spec.outputs)}")
        return cls(data, timed, carry, tuple(spec.outputs))

    def forward(self, step: Callable[[Mapping[str, Any]], Mapping[str, Any]],
                inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs of every step, stacked along a new first axis, in declared order."""
        state = {k: inputs[k] for k in self.carry}
        stacked: dict[str, list] = {o: [] for o in self.outputs}
        for t in range(np.shape(inputs[self.timed[0]])[0]):
            values = step({k: inputs[k][t] if k in self.timed else state.get(k, inputs[k])
                           for k in self.data})
            for o in self.outputs:
                stacked[o].append(values[o])
            state.update((k, values[o]) for k, o in self.carry.items())
        return [np.stack(stacked[o]) for o in self.outputs]

    def backward(self, step: Callable[[list[np.ndarray]], Mapping[str, Any]],
                 douts: Sequence[np.ndarray]) -> dict[str, Any]:
        """The gradients of the inputs: per step for those sliced in time, through the carried
        state for the initial ones, summed for the others."""
        steps = np.shape(douts[0])[0]
        carried: dict[str, Any] = {o: 0 for o in self.carry.values()}
        per_step: dict[str, list] = {}
        grads: dict[str, Any] = {}
        for t in reversed(range(steps)):
            got = step([d[t] + carried.get(o, 0) for o, d in zip(self.outputs, douts)])
            for key, g in got.items():
                if key in self.timed:
                    per_step.setdefault(key, [None] * steps)[t] = g
                elif key in self.carry:
                    carried[self.carry[key]] = g
                else:
                    grads[key] = grads.get(key, 0) + g
            grads.update((k, carried[o]) for k, o in self.carry.items() if k in got)
        grads.update((k, np.stack(v)) for k, v in per_step.items())
        return grads
