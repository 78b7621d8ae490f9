"""The dot-product (adjoint) test between the hand JVP and the hand backward, with no reference:
<u, J v> = <J^T u, v> for random u (out's shape) and v (the inputs'), over 3 x 3 pairs, each to
IDENTITY_RTOL of the magnitude of its terms (see :mod:`handgrad.tolerances`)."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.cases import full_dims
from handgrad.diagnose import diagnose
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import (
    PROBE_COUNT,
    PROBES,
    TANGENT,
    broken,
    directions,
    probe_judgement,
    upstream_like,
)
from handgrad.oracles.numerics import linear_hand
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import IDENTITY_RTOL


def dot_product(run: CaseRun) -> None:
    record = run.record
    out_shape = np.shape(run.hand.out)
    try:
        vs = [directions(run, TANGENT, i) for i in range(PROBE_COUNT)]
        jvs = [linear_hand.jvp(run, v)[0] for v in vs]
        us = [upstream_like(run, out_shape, PROBES, i) for i in range(PROBE_COUNT)]
        jtus = [linear_hand.backward(run, u) for u in us]
    except LinearContractError as exc:
        broken(run, "dot-product", exc)
        return
    forward_side = np.array([[float(np.vdot(u, jv)) for jv in jvs] for u in us])
    reverse_side = np.array([[sum(float(np.vdot(g[k], v[k])) for k in record.differentiable)
                              for v in vs] for g in jtus])
    magnitude = np.array([[float(np.abs(u * jv).sum()) + sum(
        float(np.abs(g[k] * v[k]).sum()) for k in record.differentiable)
        for jv, v in zip(jvs, vs)] for u, g in zip(us, jtus)])
    run.linear["dot-product"] = (forward_side, reverse_side, magnitude)
    passed, worst_rel, worst = probe_judgement(forward_side, reverse_side, magnitude,
                                               IDENTITY_RTOL)
    what = (f"<u, J v> by the hand jvp against <J^T u, v> by the hand backward over "
            f"{PROBE_COUNT} x {PROBE_COUNT} random pairs: worst discrepancy {worst_rel:.1e} of "
            f"the magnitude of the terms")
    kind = ""
    if not passed:
        kind, evidence = diagnose(forward_side, reverse_side, IDENTITY_RTOL, IDENTITY_RTOL,
                                  full_dims(record, run.case.dim_map))
        what += f"; <u, J v> = {evidence.replace('reference', '<J^T u, v>')}"
        what += ("; the jvp and the backward are not adjoint: one of them is wrong (see jvp "
                 "and autograd, or jvp-fd and fd, for which)")
    run.result("dot-product", "(all)", "pass" if passed else "fail", kind=kind, message=what,
               max_abs=float(np.abs(forward_side - reverse_side).max()), max_rel=worst_rel,
               worst_index=worst, hand_value=float(forward_side[worst]),
               ref_value=float(reverse_side[worst]), rtol=IDENTITY_RTOL, atol=0.0)


ORACLE = Oracle("dot-product", "the dot-product test", dot_product,
                wanted=lambda run: run.record.jvp is not None and "dot-product" in run.checks,
                fix="the jvp and backward must run at the case's point")
