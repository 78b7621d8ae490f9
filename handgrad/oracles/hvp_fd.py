"""Central differences of the record's own backward along v, in float64, against the hand HVP:
d/dt grad S(p + t v) at t = 0 is H v (no reference needed). Piecewise-linear layers (relu,
max-pool) have a gradient that jumps where a unit changes side: a stencil straddling such a jump
is retried with smaller steps, and what still straddles one is judged between its one-sided
differences, never called wrong (see :mod:`handgrad.oracles.numerics.line_fd`)."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import broken, hand_hvp, judge_line, line_derivative
from handgrad.oracles.numerics import linear_hand
from handgrad.oracles.numerics.line_fd import step
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import tolerance


def hvp_fd(run: CaseRun) -> None:
    try:
        v, hv = hand_hvp(run)
    except LinearContractError as exc:
        broken(run, "hvp-fd", exc)
        return
    point = {k: np.asarray(run.inputs[k], np.float64) for k in v}

    def gradient_at(t: float) -> dict[str, np.ndarray]:
        moved = {**run.inputs, **{k: point[k] + t * np.asarray(v[k], np.float64) for k in v}}
        return linear_hand.backward(run, run.dout, moved)

    try:
        est = line_derivative(gradient_at, step(point, v))
    except LinearContractError as exc:
        broken(run, "hvp-fd", exc)
        return
    run.linear["hvp-fd"] = est
    judge_line(run, "hvp-fd", hv, est, tolerance("float64", "fd", run.record.tolerances),
               "central differences of the hand backward along v", bracket=False)


ORACLE = Oracle("hvp-fd", "central differences of the backward", hvp_fd,
                wanted=lambda run: run.record.hvp is not None and "hvp-fd" in run.checks,
                fix="the forward and backward must run on perturbed float64 inputs")
