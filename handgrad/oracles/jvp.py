"""The hand JVP against ``torch.func.jvp`` of the reference, in float64 and float32, tangent by
tangent in forward order (the record's ``jvp_intermediates``, then the output)."""

from __future__ import annotations

import dataclasses

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import broken, float32_allowance, hand_jvp
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.oracles.numerics.linear_reference import reference_jvp
from handgrad.tolerances import tolerance


def jvp(run: CaseRun) -> None:
    record = run.record
    try:
        v, out_tangent, inter = hand_jvp(run)
    except LinearContractError as exc:
        broken(run, "jvp", exc)
        return
    if record.reference is None:
        if run.dtype == "float64":
            run.result("jvp", "(reference)", "skipped",
                       message="no PyTorch reference: the hand jvp is checked by central "
                               "differences of the forward (jvp-fd), the dot-product test "
                               "against the hand backward and its linearity")
        return
    try:
        ref_out, ref_inter, how = reference_jvp(record, run.inputs, v, run.dtype)
        ref = {**ref_inter, "(output)": ref_out}
        allowance = float32_allowance(
            run, lambda dtype: _as_dict(reference_jvp(record, run.inputs, v, dtype)), ref)
    except Exception as exc:  # noqa: BLE001 - a broken reference is reported, not raised
        run.result("jvp", "(reference)", "error", kind="reference-error",
                   message=f"the reference's jvp raised {type(exc).__name__} in {run.dtype}: "
                           f"{exc}; fix the PyTorch reference")
        return
    tol = tolerance(run.dtype, "autograd", record.tolerances)
    hand = {**inter, "(output)": out_tangent}
    for key in (*record.jvp_intermediates, "(output)"):
        r = run.compare("jvp", key, hand[key], ref[key], tol, allowance=allowance.get(key, 0.0))
        if how != "torch.func.jvp" and r.status == "fail":
            run.results[-1] = _noted(r, f"reference by {how}")


def _as_dict(result) -> dict:
    out, inter, _ = result
    return {**inter, "(output)": out}


def _noted(r, note: str):
    return dataclasses.replace(r, message=f"{r.message}; {note}")


ORACLE = Oracle("jvp", "the hand jvp", jvp, dtypes=("float64", "float32"),
                wanted=lambda run: run.record.jvp is not None and "jvp" in run.checks,
                fix="the jvp must take (tangents, cache) and return the tangent of out")
