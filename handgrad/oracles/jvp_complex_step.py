"""The complex step along the tangent: Im out(p + i h v) / h is J v exact to rounding, where the
forward is holomorphic (``complex_step=True``); where it disagrees with central differences the
forward is not holomorphic, which is no verdict on the jvp."""

from __future__ import annotations

import dataclasses

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.compare import compare
from handgrad.oracles.base import Oracle
from handgrad.oracles.jvp_fd import along_tangent
from handgrad.oracles.linear import broken, hand_jvp
from handgrad.oracles.numerics.fd import COMPLEX_STEP
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import tolerance


def jvp_complex_step(run: CaseRun) -> None:
    try:
        v, out_tangent, _ = hand_jvp(run)
    except LinearContractError as exc:
        broken(run, "jvp-complex-step", exc)
        return
    args = {k: (np.array(x, dtype=np.complex128) if k in v else x.copy())
            for k, x in run.inputs.items()}
    for k in v:
        args[k] = args[k] + 1j * COMPLEX_STEP * np.asarray(v[k], np.float64)
    try:
        out, _ = run.record.forward(**args)
    except (TypeError, ValueError) as exc:
        run.result("jvp-complex-step", "(output)", "unreliable", kind="no-complex",
                   message=f"the forward does not accept complex input ({exc}); set "
                           "complex_step=False on the record")
        return
    est = np.imag(np.asarray(out)) / COMPLEX_STEP
    tol = tolerance("float64", "autograd", run.record.tolerances)
    r = run.compare("jvp-complex-step", "(output)", out_tangent, est, tol)
    if r.status != "fail":
        return
    central = run.linear.get("jvp-fd") or along_tangent(run, v)
    fd_tol = tolerance("float64", "fd", run.record.tolerances)
    if not compare(est.ravel(), central.value, fd_tol["rtol"], fd_tol["atol"],
                   allowance=central.error).passed:
        run.results[-1] = dataclasses.replace(
            r, status="unreliable", kind="not-holomorphic",
            message="the complex-step tangent disagrees with central differences: the forward "
                    "is not holomorphic (abs, max, comparisons); set complex_step=False on the "
                    "record. Not a verdict on the jvp.")


ORACLE = Oracle("jvp-complex-step", "the complex step along the tangent", jvp_complex_step,
                wanted=lambda run: run.record.jvp is not None and run.record.complex_step
                and "jvp-complex-step" in run.checks)
