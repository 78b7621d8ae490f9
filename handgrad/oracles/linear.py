"""What the oracles of hand JVPs and HVPs share: the random directions of a case, the hand
functions run under their contract, the float32 rounding allowance, and the judgement of a
finite-difference estimate along a line."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.cases import full_dims
from handgrad.compare import compare
from handgrad.diagnose import diagnose
from handgrad.oracles.autograd import ROUNDING_MARGIN
from handgrad.oracles.finite_differences import verdicts
from handgrad.oracles.numerics import line_fd, linear_hand
from handgrad.oracles.numerics.fd import Estimate
from handgrad.oracles.numerics.linear_hand import LinearContractError
from handgrad.report import Result

# Purposes of the seeded directions (each check draws its own, the same in both dtypes).
TANGENT, UPSTREAM, SECOND, PROBES = 10, 11, 12, 13
# Probe pairs of the dot-product and symmetry tests: 3 x 3 inner products, enough to tell a
# constant factor (the same ratio everywhere) from a wrong map (ratios that differ).
PROBE_COUNT = 3


def directions(run: CaseRun, purpose: int, index: int = 0) -> dict[str, np.ndarray]:
    """A standard normal direction per differentiable input, in the run's dtype, seeded by the
    case's data seed (the same draws in float64 and float32)."""
    rng = np.random.default_rng([run.case.data_seed, purpose, index])
    return {k: rng.standard_normal(np.shape(run.inputs[k])).astype(run.dtype)
            for k in run.record.differentiable}


def hand_jvp(run: CaseRun) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """(v, tangent of out, {intermediate: tangent}) of the hand jvp along the case's tangent,
    computed once per run (raises :class:`LinearContractError`)."""
    if "jvp" not in run.linear:
        v = directions(run, TANGENT)
        run.linear["jvp"] = (v, *linear_hand.jvp(run, v))
    return run.linear["jvp"]


def hand_hvp(run: CaseRun) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(v, H v) of the hand hvp along the case's direction with the case's dout, computed once
    per run (raises :class:`LinearContractError`)."""
    if "hvp" not in run.linear:
        v = directions(run, SECOND)
        run.linear["hvp"] = (v, linear_hand.hvp(run, run.dout, v))
    return run.linear["hvp"]


def upstream_like(run: CaseRun, shape: tuple, purpose: int, index: int = 0) -> np.ndarray:
    rng = np.random.default_rng([run.case.data_seed, purpose, index, 1])
    return rng.standard_normal(shape).astype(run.dtype)


def broken(run: CaseRun, check: str, exc: LinearContractError) -> Result:
    """A result for a hand function that broke its contract."""
    status = "error" if exc.kind in ("exception", "not-implemented", "bad-return",
                                     "not-a-dict") else "fail"
    return run.result(check, exc.tensor, status, kind=exc.kind, message=str(exc))


def float32_allowance(run: CaseRun, reference: Callable[[str], dict[str, np.ndarray]],
                      ref32: dict[str, np.ndarray]) -> dict[str, float]:
    """In float32, ROUNDING_MARGIN times the largest error of the float32 reference against the
    float64 reference on the same rounded inputs and directions, per tensor (as for gradients:
    :func:`handgrad.oracles.autograd.rounding_of_reference`). ``reference(dtype)`` computes it."""
    if run.dtype == "float64":
        return {}
    ref64 = reference("float64")
    return {k: ROUNDING_MARGIN * float(np.abs(np.asarray(ref32[k], np.float64)
                                              - ref64[k]).max(initial=0.0)) for k in ref32}


def judge_line(run: CaseRun, check: str, tensors: dict[str, np.ndarray], est: Estimate,
               tol: dict, method: str, bracket: bool) -> None:
    """Hand values (``tensors``, in order, flattened into ``est``) against a finite-difference
    estimate along a line, one result per tensor: wrong beyond the estimate's error bound is a
    failure; an estimate whose own bound exceeds the tolerance is unreliable (no verdict).

    An entry whose stencil still straddles a kink after shrinking: with ``bracket`` (phi is
    continuous with a jump in its slope there, as the output along a tangent), its one-sided
    differences are the one-sided derivatives, and a hand value between them passes, outside
    them is no verdict; without (phi itself jumps, as a relu network's gradient), the one-sided
    differences grow like 1/h and bracket anything: no verdict there at all."""
    start = 0
    for key, hand in tensors.items():
        n = hand.size
        part = Estimate(*(getattr(est, f)[start:start + n] for f in
                          ("value", "truncation", "roundoff", "forward", "backward", "kink")))
        start += n
        flat = np.asarray(hand, np.float64).ravel()
        right, wrong, undecidable, outside = verdicts(flat, part, tol)
        notes = [method]
        if part.kink.any():
            notes.append(f"{int(part.kink.sum())} entries still straddle a kink at the smallest "
                         "step (a relu or max changing side within 1e-8 of the point): " +
                         ("judged between their one-sided differences" if bracket else
                          "the gradient jumps there, so no verdict on them"))
        if undecidable.any():
            notes.append(f"the estimate is unreliable at {int(undecidable.sum())} entries (its "
                         "error bound, from round-off, exceeds the tolerance): not a verdict")
        if outside.any():
            notes.append(f"at {int(outside.sum())} entries on a kink the hand value lies outside "
                         "the one-sided differences: no verdict")
        unjudged = part.kink if not bracket else outside
        status = ("fail" if wrong.any() else
                  "unreliable" if undecidable.any() or unjudged.any() else "pass")
        scale = max(float(np.abs(part.value).max(initial=0.0)),
                    float(np.abs(flat).max(initial=0.0)))
        reference = np.where(part.kink, flat, part.value)
        c = compare(flat, reference, tol["rtol"], tol["atol"], scale=scale,
                    allowance=part.error)
        kind = ""
        if wrong.any():
            shape = np.shape(hand)
            axes = (run.record.inputs.get(key) or run.record.intermediate_shapes.get(key)
                    or (run.record.output if key == "(output)" else None))
            kind, evidence = diagnose(flat.reshape(shape), reference.reshape(shape),
                                      tol["rtol"], tol["atol"],
                                      full_dims(run.record, run.case.dim_map), axes)
            notes.append(evidence)
        worst = (tuple(int(i) for i in np.unravel_index(int(np.argmax(
            np.abs(flat - reference))), np.shape(hand))) if flat.size else ())
        run.result(check, key, status, kind=kind, message="; ".join(notes), max_abs=c.max_abs,
                   max_rel=c.max_rel, worst_index=worst, hand_value=c.hand_value,
                   ref_value=c.ref_value, rtol=c.rtol, atol=c.atol)


def line_derivative(phi: Callable[[float], dict[str, np.ndarray]], h: float) -> Estimate:
    """Richardson estimate of d/dt phi(t) at 0 for a dict of arrays, flattened in order."""
    first = phi(0.0)
    sizes = [a.size for a in first.values()]

    def flat(t: float) -> np.ndarray:
        values = first if t == 0.0 else phi(t)
        return np.concatenate([np.asarray(a, np.float64).ravel() for a in values.values()])

    return line_fd.derivative(flat, h, sizes)


def probe_judgement(hand: np.ndarray, other: np.ndarray, magnitude: np.ndarray, rtol: float
                    ) -> tuple[bool, float, tuple[int, int]]:
    """(passed, worst relative discrepancy, its index) of two probe matrices of inner
    products, each entry allowed ``rtol`` of the magnitude of its terms."""
    rel = np.abs(hand - other) / np.maximum(magnitude, 1e-300)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(rel)), rel.shape))
    return bool(np.all(np.abs(hand - other) <= rtol * magnitude)), float(rel.max()), worst
