"""The one interface of an oracle, and what the float64 oracles of one case share: the inputs
that can enter a numeric check, the evaluation of S = sum(dout * out) with inputs replaced, its
value and rounding noise at the case's point, and central differences of S."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.oracles.numerics import fd
from handgrad.oracles.numerics.kinks import rounding_noise

DIRECTIONS = 3
# The default fix an oracle names when evaluating the record's functions raises.
PERTURBED = "the forward must run on perturbed float64 inputs"


def _asked(check: str) -> Callable[[CaseRun], bool]:
    return lambda run: check in run.checks


@dataclass(frozen=True)
class Oracle:
    """One way of knowing the truth, run on one case.

    ``check`` names the results it writes (and the entry of ``checks`` or ``skip`` that turns it
    on or off); ``wanted(run)`` says whether it runs on this case (by default: its check was
    asked for), ``dtypes`` in which dtypes; ``run(run)`` appends its results to ``run``. With
    ``guard``, an exception inside ``run`` becomes an error result naming ``what`` and ``fix``
    (without, the oracle reports its own)."""

    check: str
    what: str
    run: Callable[[CaseRun], None]
    wanted: Callable[[CaseRun], bool] | None = None
    dtypes: tuple[str, ...] = ("float64",)
    fix: str = PERTURBED
    guard: bool = True

    def wants(self, run: CaseRun) -> bool:
        if run.dtype not in self.dtypes:
            return False
        return (self.wanted or _asked(self.check))(run)


def usable(run: CaseRun) -> list[str]:
    """The differentiable inputs whose hand gradient can enter a numeric check."""
    return [k for k in run.record.differentiable
            if k in run.hand.grads and run.hand.grads[k].shape == run.inputs[k].shape]


def elementwise(run: CaseRun) -> bool:
    """Whether finite differences go entry by entry (else along random directions)."""
    record = run.record
    if record.fd != "auto":
        return record.fd == "elementwise"
    return sum(run.inputs[k].size for k in record.differentiable) <= record.fd_element_limit


def rng(run: CaseRun, purpose: int, key: str) -> np.random.Generator:
    return np.random.default_rng([run.case.data_seed, purpose, list(run.record.inputs).index(key)])


def directions(run: CaseRun, key: str) -> np.ndarray:
    return rng(run, 2, key).standard_normal((DIRECTIONS, *run.inputs[key].shape))


def evaluate(run: CaseRun):
    """``f(name, value) -> (S, sum |terms|)`` with one input replaced (see :func:`fd.objective`)."""
    if run.evaluate is None:
        run.evaluate = fd.objective(run.record, run.inputs, run.dout)
    return run.evaluate


def centre(run: CaseRun) -> tuple[float, float]:
    """(S, sum |terms|) at the case's point, shared by every finite difference of the case."""
    if run.centre is None:
        run.centre = evaluate_all(run)({})
    return run.centre


def noise(run: CaseRun) -> float:
    """The rounding noise of S at the case's point, measured once along a random direction over
    every usable input (it is a property of S's computation there, not of the input moved)."""
    if run.sigma is None:
        keys = usable(run)
        generator = np.random.default_rng([run.case.data_seed, 5])
        base = {k: np.asarray(run.inputs[k], np.float64) for k in keys}
        moves = {}
        for k in keys:
            v = generator.standard_normal(base[k].shape)
            moves[k] = v / max(float(np.abs(v).max(initial=0.0)), 1e-300) \
                * max(1.0, float(np.abs(base[k]).max(initial=0.0)))
        at = evaluate_all(run)
        run.sigma = rounding_noise(
            lambda t: at({k: base[k] + t * moves[k] for k in keys})[0], 1e-6,
            flat=flat_noise(run.dout))
    return run.sigma


def flat_noise(dout: np.ndarray) -> float:
    """The rounding of S = sum(dout * out) where S takes one value around the point, so that its
    value shows nothing of its rounding: a forward rounds its intermediates of size one (exp(0),
    the 1 in log(1 + p), a sigmoid near 1) to eps whatever its output, so each output carries at
    least eps |dout|. The finite differences then resolve no derivative below about
    10 eps sum|dout| / h (1.2e-11 sum|dout| at h = 1.8e-4)."""
    return float(np.finfo(np.float64).eps * np.abs(np.asarray(dout, np.float64)).sum())


def evaluate_all(run: CaseRun):
    """S with several inputs replaced at once: ``f({name: value}) -> (S, sum |terms|)``."""
    up = np.asarray(run.dout, np.float64)

    def at(params: dict[str, np.ndarray]):
        args = {k: v.copy() for k, v in run.inputs.items()}
        args.update({k: np.array(v, dtype=np.float64) for k, v in params.items()})
        out, _ = run.record.forward(**args)
        terms = up * np.asarray(out)
        return float(terms.sum()), float(np.abs(terms).sum())

    return at


def central(run: CaseRun, key: str) -> fd.Estimate:
    """Central differences for input ``key``: per element (flat) or along the case's directions."""
    x = run.inputs[key]
    if elementwise(run):
        return fd.elementwise(evaluate(run), key, x, noise=noise(run), centre=centre(run))
    return fd.Estimate.join([fd.directional(evaluate(run), key, x, v, noise(run), centre(run))
                             for v in directions(run, key)])
