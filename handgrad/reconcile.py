"""Reconciling the oracles of one case, where one of them cannot judge what the others can.

At a kink (a tie of a max, a relu at 0) autograd returns torch's choice of subgradient, which
may differ from a right hand value: the subgradient test of the finite differences decides
there. A Taylor slope may be bent by a kink the test could not see: the exact oracles decide.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from handgrad.oracles.base import usable
from handgrad.oracles.finite_differences import kinks_of
from handgrad.report import Result
from handgrad.tolerances import tolerance


def kinks(run, run64) -> None:
    """Autograd (and descent) mismatches that sit only on kinks are judged by the subgradient
    test: where the hand value passed it, torch chose another valid subgradient (unreliable, not
    wrong); where it failed, the kind is "subgradient". Intermediates follow when every input's
    mismatch sat on kinks."""
    tol = tolerance(run.dtype, "autograd", run.record.tolerances)
    verdicts = []
    for i, r in enumerate(run.results):
        if r.status != "fail" or r.check not in ("autograd", "descent") \
                or r.tensor not in run.record.differentiable or r.kind == "wrong-shape":
            continue
        kinks = run64.kinks.get(r.tensor)
        hand, ref = run.hand.grads.get(r.tensor), run.ref_grads.get(r.tensor)
        bad = None
        if r.check == "autograd" and hand is not None and ref is not None:
            scale = float(np.abs(ref).max(initial=0.0))
            bad = np.flatnonzero(np.abs(hand - ref) > tol["atol"] * scale
                                 + tol["rtol"] * np.abs(ref))
            if kinks is None and r.tensor in usable(run64):
                try:
                    kinks = kinks_of(run64, r.tensor, bad,
                                             np.flatnonzero(run64.ref_grads[r.tensor]))
                except Exception as exc:  # noqa: BLE001 - the forward raised off the point
                    run64.result("fd", r.tensor, "error", kind="exception",
                                 message=f"probing entries for kinks raised "
                                         f"{type(exc).__name__}: {exc}; the forward must run on "
                                         "perturbed float64 inputs")
        if kinks is None or (bad is not None and not kinks.explains(bad)):
            verdicts.append(None)
            continue
        accepted = kinks.accepts(bad if bad is not None else np.zeros(0, dtype=int))
        verdicts.append(accepted)
        run.results[i] = _at_kinks(r, kinks, accepted)
    if verdicts and None not in verdicts:
        for i, r in enumerate(run.results):
            if r.status == "fail" and r.check in ("autograd", "descent") \
                    and r.tensor in run.record.intermediates:
                run.results[i] = _at_kinks(r, None, all(verdicts))


def _at_kinks(r: Result, kinks, accepted: bool) -> Result:
    where = (f"the mismatch sits on {kinks.indices.size} entries on a kink"
             if kinks is not None else "downstream of inputs whose mismatch sits on kinks")
    if accepted:
        return dataclasses.replace(r, status="unreliable", kind="",
                                   message=f"{where}, where torch picked another subgradient "
                                           "than the hand code and the hand value passed the "
                                           "subgradient test (see fd): autograd cannot judge it")
    return dataclasses.replace(r, kind="subgradient",
                               message=f"{where}, and the hand value there is not a valid "
                                       "subgradient" + (f": {kinks.message}" if kinks else ""))


def fd_at_kinks(run) -> None:
    """At a point where finite differences met kinks (ties of a max that a step breaks, relus
    at 0), a finite-difference failure never calls a gradient wrong that autograd, and the
    forward's values, find right at tight tolerance: the stencils around the kinks are likelier
    wrong than an independent exact oracle (found by the 30-seed sweep on lenet5-sigmoid, whose
    minimal case meets 3 ties and has gradients of 3e-8)."""
    if not run.ref_grads or not any(k.indices.size for k in run.kinks.values()):
        return
    keys = usable(run)
    exact = [r for r in run.results if r.check in ("autograd", "forward")
             and r.dtype == run.dtype and (r.check == "forward" or r.tensor in keys)]
    if not exact or any(r.status != "pass" for r in exact) \
            or {r.tensor for r in exact if r.check == "autograd"} < set(keys):
        return
    for i, r in enumerate(run.results):
        if r.check == "fd" and r.status == "fail":
            run.results[i] = dataclasses.replace(
                r, status="unreliable", kind="",
                message=f"{r.message}; not a verdict: the point lies on kinks (see fd) and "
                        "autograd and the forward's values agree with the hand code at tight "
                        "tolerance: the differences around the kinks are likelier off")


def taylor(run) -> None:
    """A Taylor slope alone never calls a gradient wrong that every exact oracle, at tight
    tolerance, finds right (a kink the test could not see is likelier), nor at a point that
    finite differences found on a kink (the one-sided remainder there measures the distance
    between the hand's subgradient and the right derivative, which the subgradient test judges)."""
    idx = next((i for i, r in enumerate(run.results)
                if r.check == "taylor" and r.status == "fail"), None)
    if idx is None:
        return
    keys = usable(run)
    confirmed = {(r.check, r.tensor) for r in run.results
                 if r.tensor in keys and r.check in ("autograd", "fd") and r.status == "pass"}
    needed = {("fd", k) for k in keys} | ({("autograd", k) for k in keys} if run.ref_grads
                                          else set())
    on_kink = [k for k, kinks in run.kinks.items() if kinks.indices.size]
    if not (needed <= confirmed or on_kink):
        return
    why = (f"the point lies on kinks of {', '.join(on_kink)} (see fd)" if on_kink else
           "autograd and finite differences find every gradient right at tight tolerance: a "
           "kink along the test direction is likelier than a wrong gradient")
    r = run.results[idx]
    run.results[idx] = dataclasses.replace(r, status="unreliable", kind="",
                                           message=f"{r.message}; not a verdict: {why}")


def _verdict_of(run, checks: tuple[str, ...], tensors=None) -> bool | None:
    """True when every row of ``checks`` (on ``tensors``) passed and one ran, False when one
    failed, None when none decided."""
    rows = [r for r in run.results if r.check in checks and r.dtype == run.dtype
            and r.status in ("pass", "fail") and (tensors is None or r.tensor in tensors)]
    if not rows:
        return None
    return all(r.status == "pass" for r in rows)


def linearisations(run) -> None:
    """Where the identities between hand linearisations fail, say which side is wrong from the
    oracles that judge each side alone; a second-order Taylor slope alone never calls an HVP
    wrong that the exact oracles find right (a kink the test could not see is likelier)."""
    record = run.record
    for i, r in enumerate(run.results):
        if r.check == "dot-product" and r.status == "fail":
            jvp_ok = _verdict_of(run, ("jvp",))
            jvp_ok = jvp_ok if jvp_ok is not None else _verdict_of(run, ("jvp-fd",))
            back_ok = _verdict_of(run, ("autograd",), set(record.differentiable))
            back_ok = back_ok if back_ok is not None else _verdict_of(
                run, ("fd",), set(record.differentiable))
            blame = {(True, False): "the jvp agrees with its oracles and the backward does "
                                    "not: the backward is wrong",
                     (False, True): "the backward agrees with its oracles and the jvp does "
                                    "not: the jvp is wrong",
                     (False, False): "both the jvp and the backward disagree with their "
                                     "oracles"}.get((jvp_ok, back_ok))
            if blame:
                run.results[i] = dataclasses.replace(r, message=f"{r.message}; {blame}")
        if r.check == "hvp-fd" and r.status == "fail" \
                and _verdict_of(run, ("autograd", "fd"), {r.tensor}) is False \
                and _verdict_of(run, ("hvp",), {r.tensor}):
            run.results[i] = dataclasses.replace(
                r, message=f"{r.message}; the hvp agrees with the reference's double backward "
                           "and the hand backward is wrong: these differences differentiate "
                           "the hand backward")
    idx = next((i for i, r in enumerate(run.results)
                if r.check == "taylor2" and r.status == "fail"), None)
    if idx is None:
        return
    exact = [_verdict_of(run, ("hvp",)), _verdict_of(run, ("hvp-fd",)),
             _verdict_of(run, ("autograd", "fd"), set(record.differentiable))]
    if all(v is True for v in exact[1:]) and exact[0] is not False:
        r = run.results[idx]
        run.results[idx] = dataclasses.replace(
            r, status="unreliable", kind="",
            message=f"{r.message}; not a verdict: the hvp agrees with central differences of "
                    "the backward (and the reference where there is one) and the gradient with "
                    "its oracles at tight tolerance: a kink along the test direction is likelier")
