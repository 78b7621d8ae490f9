"""The second-order Taylor test of the hand gradient and HVP together (after pyadjoint's
``taylor_test`` with a Hessian): |S(p + h v) - S(p) - h <g, v> - h^2/2 <v, H v>| falls like h^3
(slope 3) when both are right, like h^2 when H v is wrong, like h when g is. Fitted only above
the measured round-off floor and below the kinks along v, as the first-order test."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle, evaluate_all, noise, usable
from handgrad.oracles.linear import broken, hand_hvp
from handgrad.oracles.numerics import linear_hand
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.oracles.numerics.taylor import taylor_test


def taylor2(run: CaseRun) -> None:
    keys = usable(run)
    if keys != list(run.record.differentiable):
        return  # a gradient broke its contract: the contract rows say why
    try:
        hand_hvp(run)
    except LinearContractError as exc:
        broken(run, "taylor2", exc)
        return

    def curvature(direction: dict[str, np.ndarray]) -> float:
        hv = linear_hand.hvp(run, run.dout, direction)
        return float(sum(np.vdot(direction[k], hv[k]) for k in keys))

    rng = np.random.default_rng([run.case.data_seed, 14])
    t = taylor_test(evaluate_all(run), {k: run.inputs[k] for k in keys},
                    {k: run.hand.grads[k] for k in keys}, rng, sigma=noise(run),
                    curvature=curvature)
    run.linear["taylor2"] = t
    kind = "" if t.status != "fail" else ("first-order" if t.slope < 1.5 else "second-order")
    run.result("taylor2", "(all)", t.status, kind=kind, message=t.message, max_rel=t.slope)


ORACLE = Oracle("taylor2", "the second-order Taylor test", taylor2,
                wanted=lambda run: run.record.hvp is not None and "taylor2" in run.checks)
