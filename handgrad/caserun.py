"""One case of one derivation in one dtype, as every oracle sees it: the inputs, the upstream
gradient and what the hand code returned, built once; each oracle appends its results."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

from handgrad import contain
from handgrad.cases import Case, full_dims
from handgrad.compare import compare
from handgrad.contract import HandRun
from handgrad.diagnose import diagnose, diagnose_shape
from handgrad.record import Derivation
from handgrad.report import Result


@dataclasses.dataclass
class CaseRun:
    """Everything one case needs, built once; each oracle reads from it."""

    record: Derivation
    case: Case
    dtype: str
    inputs: dict[str, np.ndarray]
    dout: np.ndarray
    hand: HandRun
    results: list[Result] = dataclasses.field(default_factory=list)
    ref_grads: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    evaluate: object = None
    sigma: float | None = None  # rounding noise of S at the point (oracles.base.noise)
    centre: tuple[float, float] | None = None  # (S, sum |terms|) at the point
    kinks: dict = dataclasses.field(default_factory=dict)  # name -> finite_differences.KinkSet
    taylor: object = None
    prepared: tuple = ()  # (out, grads) of float64 autograd, when already computed
    checks: frozenset[str] = frozenset()  # the checks asked for (less the record's skips)
    linear: dict = dataclasses.field(default_factory=dict)  # what the jvp/hvp oracles share

    def result(self, check: str, tensor: str, status: str, **fields) -> Result:
        r = Result(derivation=self.record.name, case=self.case.describe(),
                   data_seed=self.case.data_seed, dtype=self.dtype, check=check, tensor=tensor,
                   status=status, tag=self.record.tags.get(tensor, ""), **fields)
        self.results.append(r)
        return r

    def scalar_upstream(self) -> float | None:
        """The upstream gradient of a scalar output (which scales every gradient), or None."""
        if self.dout is None or np.size(self.dout) != 1:
            return None
        return float(np.asarray(self.dout).ravel()[0])

    def compare(self, check: str, key: str, hand: np.ndarray, ref: np.ndarray,
                tol: Mapping[str, float], allowance=0.0, **fields) -> Result:
        hand = np.asarray(hand)
        ref = np.asarray(ref)
        if hand.shape != ref.shape:
            return self.result(check, key, "fail", kind="wrong-shape",
                               message=diagnose_shape(hand, ref, tol["rtol"], tol["atol"]),
                               **fields)
        c = compare(hand, ref, tol["rtol"], tol["atol"], allowance=allowance)
        kind, message = "", ""
        if not c.passed:
            axes = self.record.inputs.get(key) or self.record.intermediate_shapes.get(key)
            if key == "(output)" and check != "forward" and self.record.output is not None:
                axes = self.record.output  # the tangent of the output (jvp checks)
            kind, message = diagnose(hand, ref, tol["rtol"], tol["atol"],
                                     full_dims(self.record, self.case.dim_map), axes,
                                     upstream=None if key == "(output)"
                                     else self.scalar_upstream())
        return self.result(check, key, "pass" if c.passed else "fail", kind=kind,
                           message=message, max_abs=c.max_abs, max_rel=c.max_rel,
                           worst_index=c.worst_index, hand_value=c.hand_value,
                           ref_value=c.ref_value, rtol=c.rtol, atol=c.atol, **fields)


@contextmanager
def guarded(run: CaseRun, check: str, tensor: str, what: str, fix: str,
            kind: str = "exception"):
    """Any exception inside becomes an error result naming the check and the fix."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - a derivation that raises is a result
        if not contain.from_code(exc):
            raise
        run.result(check, tensor, "error", kind=kind,
                   message=f"{what} raised {type(exc).__name__}: {exc}; {fix}")
