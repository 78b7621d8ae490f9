"""Central differences of the NumPy forward along the tangent, in float64, against the hand JVP:
d/dt out(p + t v) at t = 0 is J v, entry by entry (Richardson, error bound and kinks as in
:mod:`handgrad.oracles.numerics.line_fd`). Needs no reference."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import broken, hand_jvp, judge_line, line_derivative
from handgrad.oracles.numerics.line_fd import step
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import tolerance


def along_tangent(run: CaseRun, v: dict[str, np.ndarray]):
    """The Richardson estimate of d/dt out(p + t v), flattened, with out's shape."""
    point = {k: np.asarray(run.inputs[k], np.float64) for k in v}

    def out_at(t: float) -> dict[str, np.ndarray]:
        args = {k: x.copy() for k, x in run.inputs.items()}
        args.update({k: point[k] + t * np.asarray(v[k], np.float64) for k in v})
        out, _ = run.record.forward(**args)
        return {"(output)": np.asarray(out, np.float64)}

    return line_derivative(out_at, step(point, v))


def jvp_fd(run: CaseRun) -> None:
    try:
        v, out_tangent, _ = hand_jvp(run)
    except LinearContractError as exc:
        broken(run, "jvp-fd", exc)
        return
    est = along_tangent(run, v)
    run.linear["jvp-fd"] = est
    judge_line(run, "jvp-fd", {"(output)": out_tangent}, est,
               tolerance("float64", "fd", run.record.tolerances),
               "central differences of the forward along the tangent", bracket=True)


ORACLE = Oracle("jvp-fd", "central differences along the tangent", jvp_fd,
                wanted=lambda run: run.record.jvp is not None and "jvp-fd" in run.checks)
