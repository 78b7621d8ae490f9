"""The descent step: one step of the record's update rule lowers S and matches
``torch.optim.SGD`` on the reference."""

from __future__ import annotations

import numpy as np

from handgrad.autograd import run_reference, to_tensors
from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.state import explicit_state
from handgrad.tolerances import tolerance


@explicit_state()
def descent(run: CaseRun) -> None:
    """One step of the record's update rule on S = sum(dout * out) (the loss itself, scaled,
    for a scalar loss; any layer's output otherwise): it lowers S and matches torch.optim.SGD
    on the reference. The steps (new - old) are compared, so a wrong step is diagnosed as such
    (an ascent is a sign)."""
    import torch

    record = run.record
    if not all(k in run.hand.grads for k in record.differentiable):
        return
    up = np.asarray(run.dout, np.float64)
    s0 = float((up * run.hand.out).sum())
    grads = dict(run.hand.grads)
    params = {k: run.inputs[k].copy() for k in record.differentiable}
    norm2 = sum(float(np.vdot(g, g)) for k, g in grads.items() if k in params)
    lr = 1e-3 * max(abs(s0), 1.0) / max(norm2, 1e-12)
    new = record.update({k: v.copy() for k, v in params.items()}, grads, lr)
    misshapen = [k for k in new if np.shape(new[k]) != np.shape(run.inputs.get(k))]
    tol = tolerance("float64", "autograd", record.tolerances)
    if run.ref_grads:
        tensors = to_tensors(record, run.inputs, "float64")
        leaves = [tensors[k] for k in new]
        optimizer = torch.optim.SGD(leaves, lr=lr)
        ref_out, _ = run_reference(record, tensors)
        (ref_out * torch.from_numpy(up)).sum().backward()
        optimizer.step()
        stepped = {k: leaf.detach().numpy() for k, leaf in zip(new, leaves)}
    else:  # no reference: plain SGD with the gradients finite differences vouched for
        stepped = {k: params[k] - lr * grads[k] for k in new}
    for key in new:
        old = params.get(key, run.inputs[key])
        hand_step = np.asarray(new[key]) - old if key not in misshapen else np.asarray(new[key])
        run.compare("descent", key, hand_step, stepped[key] - old, tol)
    if misshapen:
        return
    new_out, _ = record.forward(**{**run.inputs, **new})
    s1 = float((up * np.asarray(new_out)).sum())
    lowered = s1 < s0
    what = "loss" if np.shape(run.hand.out) == () else "sum(dout * out)"
    run.result("descent", "(loss)", "pass" if lowered else "fail",
               kind="" if lowered else "ascent", hand_value=s1, ref_value=s0,
               message=f"{what} {s0:.6g} -> {s1:.6g} after one step with lr={lr:.2e}"
                       + ("" if lowered else ": the update climbs"))


ORACLE = Oracle("descent", "the descent step", descent, fix="fix the update rule",
                wanted=lambda run: "descent" in run.checks and run.record.update is not None)
