"""The symmetry of the hand HVP, with no reference: <u, H v> = <v, H u> for 3 random directions
(a 3 x 3 matrix of inner products that must equal its transpose), each to IDENTITY_RTOL of the
magnitude of its terms. A Hessian is symmetric; a dropped cross term or one wrong slice is
not."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import PROBE_COUNT, SECOND, broken, directions, probe_judgement
from handgrad.oracles.numerics import linear_hand
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import IDENTITY_RTOL


def symmetry(run: CaseRun) -> None:
    keys = run.record.differentiable
    try:
        us = [directions(run, SECOND, i) for i in range(PROBE_COUNT)]
        hus = [linear_hand.hvp(run, run.dout, u) for u in us]
    except LinearContractError as exc:
        broken(run, "symmetry", exc)
        return
    inner = np.array([[sum(float(np.vdot(u[k], hu[k])) for k in keys) for hu in hus]
                      for u in us])
    terms = np.array([[sum(float(np.abs(u[k] * hu[k]).sum()) for k in keys) for hu in hus]
                      for u in us])
    magnitude = terms + terms.T
    run.linear["symmetry"] = (inner, magnitude)
    passed, worst_rel, worst = probe_judgement(inner, inner.T, magnitude, IDENTITY_RTOL)
    message = (f"<u_i, H u_j> against <u_j, H u_i> over {PROBE_COUNT} random directions: worst "
               f"discrepancy {worst_rel:.1e} of the magnitude of the terms")
    if not passed:
        message += ("; the hand hvp is not symmetric, so it is no Hessian: a cross term between "
                    "two inputs dropped or counted on one side only, or a slice handled apart?")
    run.result("symmetry", "(all)", "pass" if passed else "fail",
               kind="" if passed else "asymmetric", message=message,
               max_abs=float(np.abs(inner - inner.T).max()), max_rel=worst_rel,
               worst_index=worst, hand_value=float(inner[worst]),
               ref_value=float(inner.T[worst]), rtol=IDENTITY_RTOL, atol=0.0)


ORACLE = Oracle("symmetry", "the symmetry test", symmetry,
                wanted=lambda run: run.record.hvp is not None and "symmetry" in run.checks)
