"""The evidence behind a verdict, for pictures: one case of a checked derivation re-run through the
engine, keeping what the checks compute and forget (the Taylor remainders, the hand and reference
gradients), plus a finite-difference sweep over the step h and the record's own ``figures``.

Only the drawn case is re-run, never the whole check: the report of the check says which case
tells most (the most informative failing case, or for a passing record the smallest case with
the most dimensions above 1), and its data seed is the one the check settled on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handgrad.autograd import autograd_oracle
from handgrad.cases import Case
from handgrad.check import run_oracles, start_case
from handgrad.oracles.base import central, elementwise, usable
from handgrad.oracles.numerics import fd
from handgrad.oracles.numerics.taylor import TaylorResult
from handgrad.record import Derivation
from handgrad.report import Report, case_dims, informativeness

# The sweep: central differences at half-decade steps from 1e-12 to 1 (relative to max(1, |x|)),
# enough to show truncation (error ~ h^2, right) and round-off (error ~ eps/h, left) meeting.
SWEEP_STEPS = np.logspace(-12.0, 0.0, 25)
SWEEP_ENTRIES = 3
# Heatmaps of at most this many failing tensors: the one the diagnosis names first, then the
# next in backward order (each costs a quarter second to draw, on 50 pages of known errors).
MAX_DIFFS = 2


@dataclass(frozen=True)
class Sweep:
    """Central differences of one entry of one input against the step h.

    ``errors[i]`` = |D(steps[i]) - truth|; ``truth`` is the reference gradient (float64 autograd),
    else the complex step, else the engine's Richardson estimate (``truth_from`` says which).
    ``chosen`` is the step the engine uses for this entry, ``richardson_error`` the error of its
    estimate there, ``hand_error`` |hand - truth|; ``on_kink`` when even the engine's smallest
    stencil straddles a kink (a tie, a relu at 0: no derivative, the V does not close)."""

    tensor: str
    index: tuple[int, ...]
    steps: np.ndarray
    errors: np.ndarray
    truth: float
    truth_from: str
    chosen: float
    richardson_error: float
    hand_error: float
    on_kink: bool


@dataclass(frozen=True)
class TensorDiff:
    """A failing tensor's hand and reference values (equal shapes: their difference is drawn)."""

    tensor: str
    tag: str
    check: str
    kind: str
    hand: np.ndarray
    ref: np.ndarray
    axes: tuple[str, ...]


@dataclass(frozen=True)
class FigurePair:
    title: str
    hand: np.ndarray
    ref: np.ndarray


@dataclass(frozen=True)
class Identity:
    """The two sides of an identity between hand linearisations over probe pairs (the
    dot-product test, the symmetry of H v), with the magnitude of their terms."""

    title: str
    xlabel: str
    ylabel: str
    x: np.ndarray
    y: np.ndarray
    magnitude: np.ndarray


@dataclass
class Evidence:
    """What the plots of one derivation need, from one re-run case (``case``, ``data_seed``)."""

    derivation: str
    case: str
    data_seed: int
    taylor: TaylorResult | None = None
    taylor2: TaylorResult | None = None  # the second-order test, for a record with an hvp
    identities: list[Identity] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    diffs: list[TensorDiff] = field(default_factory=list)
    figures: list[FigurePair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be drawn, and why


def drawn_case(report: Report, large: bool = False) -> tuple[str, int] | None:
    """The case to draw: the report's most telling failing case, else among the float64 cases
    with the most dimensions above 1 and distinct sizes the smallest; with ``large``, the
    largest case (a record's figures show more at larger sizes)."""
    telling = report.telling_case()
    if telling is not None:
        return telling
    cases = {(r.case, r.data_seed) for r in report.results
             if r.dtype == "float64" and r.check != "coverage" and case_dims(r.case)}
    if not cases:
        return None
    if large:
        return max(cases, key=lambda c: informativeness(c[0])[2])
    return max(cases, key=lambda c: (*informativeness(c[0])[:2], -informativeness(c[0])[2]))


def gather(record: Derivation, report: Report) -> Evidence:
    """Re-run the drawn case of ``report`` (a check of ``record``) and keep its evidence. Never
    raises: what fails becomes a note."""
    chosen = drawn_case(report, large=bool(record.figures))
    if chosen is None:
        return Evidence(record.name, "", 0, notes=["no case to draw: the check ran none"])
    evidence = Evidence(record.name, *chosen)
    try:
        _gather(record, report, evidence)
    except Exception as exc:  # noqa: BLE001 - a picture that fails is a note, never a crash
        evidence.notes.append(f"drawing the case raised {type(exc).__name__}: {exc}")
    return evidence


def _gather(record: Derivation, report: Report, evidence: Evidence) -> None:
    case = Case.of(case_dims(evidence.case), evidence.data_seed)
    with np.errstate(all="ignore"):
        run, error = start_case(record, case, "float64")
        if run is None:
            evidence.notes.append(f"the case does not run: {error.message}")
            return
        if run.hand.fatal:
            evidence.notes.append("the hand backward breaks its contract here (see the "
                                  "diagnosis): nothing to draw")
            return
        ref_out = None
        if record.reference is not None:
            try:
                ref_out, ref_grads = autograd_oracle(record, run.inputs, run.dout, "float64")
                run.prepared = (ref_out, ref_grads)
            except Exception as exc:  # noqa: BLE001
                evidence.notes.append(f"the reference raised {type(exc).__name__}: {exc}")
        checks = {"forward", "autograd", "taylor", "hvp", "taylor2", "dot-product",
                  "symmetry"} - set(record.skip)
        run_oracles(run, checks)
        evidence.taylor = run.taylor
        evidence.taylor2 = run.linear.get("taylor2")
        evidence.identities = _identities(run.linear)
        if "taylor" in record.skip:
            evidence.notes.append(f"no Taylor test: {record.skip['taylor']}")
        evidence.diffs = _diffs(run, report, evidence, ref_out)
        if "fd" in record.skip:
            evidence.notes.append(f"no finite differences: {record.skip['fd']}")
        else:
            evidence.sweeps = _sweeps(run, report, evidence)
        evidence.figures = _figures(record, run.inputs, evidence.notes)


def _identities(linear: dict) -> list[Identity]:
    out = []
    if "dot-product" in linear:
        forward, reverse, magnitude = linear["dot-product"]
        out.append(Identity("Dot-product test", "<u, J v> (hand jvp)",
                            "<J^T u, v> (hand backward)", forward, reverse, magnitude))
    if "symmetry" in linear:
        inner, magnitude = linear["symmetry"]
        out.append(Identity("Symmetry of H v", "<u_i, H u_j>", "<u_j, H u_i>", inner, inner.T,
                            magnitude))
    return out


def _failing(report: Report, evidence: Evidence) -> list:
    return [r for r in report.results if r.status in ("fail", "error")
            and (r.case, r.data_seed) == (evidence.case, evidence.data_seed)
            and r.dtype == "float64"]


def _raw_grads(run) -> dict[str, np.ndarray]:
    """The hand backward's own return, as is: the contract keeps no gradient it rejects (one
    holding NaN or inf), but that is just the one to draw."""
    try:
        _, cache = run.record.forward(**{k: v.copy() for k, v in run.inputs.items()})
        grads = run.record.backward(np.array(run.dout, copy=True), cache)
        return {k: np.asarray(v) for k, v in dict(grads).items()}
    except Exception:  # noqa: BLE001 - the contract rows already say what is wrong
        return {}


def _diffs(run, report: Report, evidence: Evidence, ref_out) -> list[TensorDiff]:
    record = run.record
    seen, diffs = set(), []
    raw: dict[str, np.ndarray] | None = None
    named = report.kind_result
    failing = _failing(report, evidence)
    failing.sort(key=lambda r: named is None or r.tensor != named.tensor)
    for r in failing:
        if r.tensor in seen or r.check not in ("autograd", "forward", "fd", "contract"):
            continue
        seen.add(r.tensor)
        if r.tensor == "(output)":
            hand, ref = run.hand.out, ref_out
        else:
            hand, ref = run.hand.grads.get(r.tensor), run.ref_grads.get(r.tensor)
            if hand is None and r.kind == "non-finite":
                raw = _raw_grads(run) if raw is None else raw
                hand = raw.get(r.tensor)
            if ref is None and r.tensor in usable(run) and elementwise(run):
                ref = central(run, r.tensor).value.reshape(run.inputs[r.tensor].shape)
        if hand is None or ref is None or (r.check == "contract"
                                           and np.shape(hand) != np.shape(ref)):
            continue
        hand, ref = np.asarray(hand, np.float64), np.asarray(ref, np.float64)
        axes = record.inputs.get(r.tensor) or record.intermediate_shapes.get(r.tensor) or ()
        diffs.append(TensorDiff(r.tensor, r.tag, r.check, r.kind, hand, ref,
                                tuple(str(a) for a in axes)))
        if len(diffs) == MAX_DIFFS:
            break
    return diffs


def _sweep_tensor(run, report: Report, evidence: Evidence) -> str | None:
    """The first failing differentiable input in the drawn case, else the first whose gradient
    is not all zero."""
    candidates = usable(run)
    failing = {r.tensor for r in _failing(report, evidence)}
    for key in run.record.differentiable:
        if key in candidates and key in failing:
            return key
    truth = run.ref_grads or run.hand.grads
    return next((k for k in candidates if np.any(truth.get(k, 0.0) != 0.0)), None)


def _sweeps(run, report: Report, evidence: Evidence) -> list[Sweep]:
    key = _sweep_tensor(run, report, evidence)
    if key is None:
        evidence.notes.append("no finite-difference sweep: no input has a usable gradient")
        return []
    x = np.asarray(run.inputs[key], np.float64)
    hand = run.hand.grads[key]
    truth, truth_from = _truth(run, key)
    entries = _entries(run, key, truth, report, evidence)
    evaluate = fd.objective(run.record, run.inputs, run.dout)
    sweeps = []
    for flat in entries:
        index = tuple(int(i) for i in np.unravel_index(flat, x.shape))
        scale = max(1.0, abs(float(x.flat[flat])))

        def at(t: float, flat=flat) -> float:
            xp = x.copy()
            xp.flat[flat] += t
            return float(np.real(evaluate(key, xp)[0]))

        target = float(truth.flat[flat])
        errors = np.array([abs((at(h) - at(-h)) / (2 * h) - target)
                           for h in SWEEP_STEPS * scale])
        richardson = fd.elementwise(evaluate, key, x, [flat])
        sweeps.append(Sweep(key, index, SWEEP_STEPS * scale, errors, target, truth_from,
                            fd.STEP * scale, abs(float(richardson.value[0]) - target),
                            abs(float(hand.flat[flat]) - target), bool(richardson.kink[0])))
    return sweeps


def _truth(run, key: str) -> tuple[np.ndarray, str]:
    if key in run.ref_grads:
        return np.asarray(run.ref_grads[key], np.float64), "autograd"
    x = run.inputs[key]
    if run.record.complex_step and x.size <= run.record.fd_element_limit:
        evaluate = fd.objective(run.record, run.inputs, run.dout, dtype=np.complex128)
        return fd.complex_step(evaluate, key, x).reshape(x.shape), "the complex step"
    evaluate = fd.objective(run.record, run.inputs, run.dout)
    return fd.elementwise(evaluate, key, x).value.reshape(x.shape), "Richardson differences"


def _entries(run, key: str, truth: np.ndarray, report: Report, evidence: Evidence) -> list[int]:
    """The worst entry of a failure of ``key`` first, then the entries of largest |truth|."""
    x = run.inputs[key]
    picked: list[int] = []
    for r in _failing(report, evidence):
        if r.tensor == key and len(r.worst_index) == x.ndim and r.worst_index:
            picked.append(int(np.ravel_multi_index(r.worst_index, x.shape)))
            break
    for flat in np.argsort(-np.abs(truth.ravel()), kind="stable"):
        if len(picked) >= min(SWEEP_ENTRIES, x.size):
            break
        if int(flat) not in picked:
            picked.append(int(flat))
    return picked


def _figures(record: Derivation, inputs, notes: list[str]) -> list[FigurePair]:
    out = []
    for title, fn in record.figures.items():
        try:
            hand, ref = fn({k: v.copy() for k, v in inputs.items()})
            out.append(FigurePair(title, np.asarray(hand, np.float64), np.asarray(ref, np.float64)))
        except Exception as exc:  # noqa: BLE001
            notes.append(f"figure {title!r} raised {type(exc).__name__}: {exc}")
    return out

