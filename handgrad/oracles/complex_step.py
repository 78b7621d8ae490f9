"""The complex step on the NumPy forward: Im S(x + i h e) / h, derivatives exact to rounding,
valid where the forward is holomorphic in the input (``complex_step=True`` on the record)."""

from __future__ import annotations

import dataclasses

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.compare import compare
from handgrad.oracles.base import Oracle, central, directions, elementwise, usable
from handgrad.oracles.numerics import fd
from handgrad.tolerances import tolerance


def complex_step(run: CaseRun) -> None:
    evaluate = fd.objective(run.record, run.inputs, run.dout, dtype=np.complex128)
    tol = tolerance("float64", "autograd", run.record.tolerances)
    for key in usable(run):
        hand, x = run.hand.grads[key], run.inputs[key]
        try:
            with np.errstate(all="ignore"):
                if elementwise(run):
                    est = fd.complex_step(evaluate, key, x).reshape(x.shape)
                else:
                    dirs = directions(run, key)
                    est = fd.complex_step(evaluate, key, x, dirs)
                    hand = np.array([np.vdot(hand, v) for v in dirs])
        except (TypeError, ValueError) as exc:
            run.result("complex-step", key, "unreliable", kind="no-complex",
                       message=f"the forward does not accept complex input ({exc}); "
                       "set complex_step=False on the record")
            return
        r = run.compare("complex-step", key, hand, est, tol)
        if r.status == "fail" and not _agrees_with_central(run, key, est):
            run.results[-1] = dataclasses.replace(
                r, status="unreliable", kind="not-holomorphic",
                message="the complex-step estimate disagrees with central differences: the "
                        "forward is not holomorphic in this input (abs, max, comparisons); set "
                        "complex_step=False on the record. Not a verdict on the derivation.")


def _agrees_with_central(run: CaseRun, key: str, est: np.ndarray) -> bool:
    """Whether a complex-step estimate matches Richardson central differences."""
    estimate = central(run, key)
    tol = tolerance("float64", "fd", run.record.tolerances)
    return compare(np.ravel(est), estimate.value, tol["rtol"], tol["atol"],
                   allowance=estimate.error).passed


ORACLE = Oracle("complex-step", "the complex step", complex_step,
                wanted=lambda run: "complex-step" in run.checks and run.record.complex_step)
