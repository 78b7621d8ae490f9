"""The linearity of the hand JVP and HVP in their direction, with no reference:
f(a u + b v) = a f(u) + b f(v) with a + b != 1 (so that an affine map, a term of the point where
one of the direction is due, fails as well as a square of the direction), at the float64
autograd tolerance (both sides are the same linear map, rounded differently)."""

from __future__ import annotations

import dataclasses

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.oracles.linear import SECOND, TANGENT, broken, directions
from handgrad.oracles.numerics import linear_hand
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.tolerances import tolerance

# a + b = -0.75, far from 1; both exact in binary.
A, B = 0.75, -1.5


def _combined(u: dict, v: dict) -> dict:
    return {k: A * u[k] + B * v[k] for k in u}


def linearity(run: CaseRun) -> None:
    record = run.record
    tol = tolerance("float64", "autograd", record.tolerances)
    what = f"f({A} u + {B} v) against {A} f(u) + {B} f(v)"
    if record.jvp is not None:
        u, v = directions(run, TANGENT, 0), directions(run, TANGENT, 1)
        try:
            fu, fv, fuv = (linear_hand.jvp(run, d)[0] for d in (u, v, _combined(u, v)))
        except LinearContractError as exc:
            broken(run, "linearity", exc)
        else:
            _judge(run, "(output)", fuv, A * fu + B * fv, tol, f"jvp: {what}")
    if record.hvp is not None:
        u, v = directions(run, SECOND, 0), directions(run, SECOND, 1)
        try:
            hu, hv, huv = (linear_hand.hvp(run, run.dout, d) for d in (u, v, _combined(u, v)))
        except LinearContractError as exc:
            broken(run, "linearity", exc)
            return
        for key in record.differentiable:
            _judge(run, key, huv[key], A * hu[key] + B * hv[key], tol, f"hvp: {what}")


def _judge(run: CaseRun, key: str, combined: np.ndarray, parts: np.ndarray, tol: dict,
           what: str) -> None:
    r = run.compare("linearity", key, combined, parts, tol)
    note = what if r.status == "pass" else (
        f"{what}: not linear in the direction (a term of the point where the direction is due, "
        "a product or square of the direction, a constant added?)")
    run.results[-1] = _with(r, note)


def _with(r, note: str):
    kind = "nonlinear" if r.status == "fail" and r.kind != "wrong-shape" else r.kind
    return dataclasses.replace(r, kind=kind, message="; ".join(m for m in (note, r.message) if m))


ORACLE = Oracle("linearity", "the linearity test", linearity,
                wanted=lambda run: (run.record.jvp is not None or run.record.hvp is not None)
                and "linearity" in run.checks)
