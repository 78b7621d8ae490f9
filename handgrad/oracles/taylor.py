"""The Taylor-remainder test of the hand gradient (see :mod:`handgrad.oracles.numerics.taylor`)."""

from __future__ import annotations

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle, evaluate_all, noise, usable
from handgrad.oracles.numerics.taylor import taylor_test


def taylor(run: CaseRun) -> None:
    keys = usable(run)
    if not keys:
        return
    rng = np.random.default_rng([run.case.data_seed, 4])
    with np.errstate(all="ignore"):
        t = taylor_test(evaluate_all(run), {k: run.inputs[k] for k in keys},
                        {k: run.hand.grads[k] for k in keys}, rng, sigma=noise(run))
    run.taylor = t
    run.result("taylor", "(all)", t.status, kind="" if t.status != "fail" else "first-order",
               message=t.message, max_rel=t.slope)


ORACLE = Oracle("taylor", "the Taylor test", taylor)
