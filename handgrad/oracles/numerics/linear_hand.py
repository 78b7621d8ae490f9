"""Calling a record's hand ``jvp``, ``hvp`` and ``backward`` on given directions, under the same
contract as the gradients: private copies in, nothing written into the directions, the
upstream gradient or the cache; the right type, keys, shapes and finite values out. What breaks
the contract raises :class:`LinearContractError`, which the oracles turn into a result."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from handgrad.caserun import CaseRun
from handgrad.contract import fingerprint


class LinearContractError(Exception):
    """The hand jvp/hvp/backward broke its contract; ``kind`` and ``tensor`` name how and
    where, the message what to fix."""

    def __init__(self, tensor: str, kind: str, message: str):
        super().__init__(message)
        self.tensor, self.kind = tensor, kind


def _forward(run: CaseRun, inputs: Mapping[str, np.ndarray] | None = None):
    args = {k: np.array(v, copy=True) for k, v in (inputs or run.inputs).items()}
    out, cache = run.record.forward(**args)
    return np.asarray(out), cache


def _array(value, tensor: str, what: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    a = np.asarray(value)
    if a.shape != shape:
        raise LinearContractError(tensor, "wrong-shape", f"{what} has shape {a.shape}, "
                                  f"expected {shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise LinearContractError(tensor, "wrong-dtype", f"{what} is {a.dtype}; return floats "
                                  "of the input dtype")
    if not np.all(np.isfinite(a)):
        raise LinearContractError(tensor, "non-finite", f"{what} holds NaN or inf at "
                                  f"{int((~np.isfinite(a)).sum())} of {a.size} entries")
    if a.dtype.itemsize < np.dtype(dtype).itemsize:
        raise LinearContractError(tensor, "wrong-dtype", f"{what} is {a.dtype} for {dtype} "
                                  "inputs (precision is lost); keep the input dtype")
    return a.astype(np.float64) if a.dtype != dtype else a.copy()


def _unchanged(given: Mapping[str, np.ndarray], kept: Mapping[str, np.ndarray], what: str,
               fn: str) -> None:
    for k, v in given.items():
        if not np.array_equal(v, kept[k]):
            raise LinearContractError(k, "mutated-input", f"{fn} wrote into its {what} {k!r}; "
                                      "compute into new arrays")


def _call(fn: str, call, *args):
    try:
        return call(*args)
    except NotImplementedError as exc:
        raise LinearContractError(f"({fn})", "not-implemented",
                                  f"{fn} is not implemented yet ({exc or 'TODO'})") from exc
    except LinearContractError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code that raises is a result
        raise LinearContractError(f"({fn})", "exception",
                                  f"{fn} raised {type(exc).__name__}: {exc}") from exc


def jvp(run: CaseRun, tangents: Mapping[str, np.ndarray],
        inputs: Mapping[str, np.ndarray] | None = None
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(tangent of out, {intermediate: tangent}) from the hand jvp at the case's point (or at
    ``inputs``), in the run's dtype."""
    record = run.record
    out, cache = _call("forward", _forward, run, inputs)
    given = {k: np.array(v, copy=True) for k, v in tangents.items()}
    before = fingerprint(cache)
    result = _call("jvp", record.jvp, given, cache)
    _unchanged(given, tangents, "tangent", "jvp")
    if {p: d for p, (_, d) in fingerprint(cache).items()} != {p: d for p, (_, d)
                                                               in before.items()}:
        raise LinearContractError("(cache)", "mutated-cache", "jvp changed what forward left "
                                  "in its cache; compute into new arrays")
    named: Mapping = {}
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], Mapping):
            raise LinearContractError("(jvp)", "bad-return", "jvp must return the tangent of "
                                      "out, or (tangent, {name: tangent})")
        result, named = result
    missing = sorted(set(record.jvp_intermediates) - set(named))
    if missing:
        raise LinearContractError(missing[0], "missing-key", f"jvp returned no tangent for the "
                                  f"jvp_intermediates {missing}; return (tangent, {{name: "
                                  "tangent}})")
    out_tangent = _array(result, "(output)", "the tangent of out", out.shape, run.dtype)
    inter = {k: np.asarray(named[k]) for k in record.jvp_intermediates}
    for k, v in inter.items():
        if not np.all(np.isfinite(v)):
            raise LinearContractError(k, "non-finite", f"the tangent of {k!r} holds NaN or inf")
    return out_tangent, inter


def hvp(run: CaseRun, dout: np.ndarray, v: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{input: (H v) for it} from the hand hvp at the case's point, S = sum(dout * out)."""
    record = run.record
    _, cache = _call("forward", _forward, run)
    given_v = {k: np.array(x, copy=True) for k, x in v.items()}
    given_dout = np.array(dout, copy=True)
    before = fingerprint(cache)
    result = _call("hvp", record.hvp, given_dout, given_v, cache)
    _unchanged(given_v, v, "direction", "hvp")
    if not np.array_equal(given_dout, dout):
        raise LinearContractError("(upstream)", "mutated-upstream", "hvp wrote into dout; "
                                  "compute into new arrays")
    if {p: d for p, (_, d) in fingerprint(cache).items()} != {p: d for p, (_, d)
                                                               in before.items()}:
        raise LinearContractError("(cache)", "mutated-cache", "hvp changed what forward left "
                                  "in its cache; compute into new arrays")
    return _keyed(run, result, "hvp", "H v")


def _keyed(run: CaseRun, result, fn: str, what: str) -> dict[str, np.ndarray]:
    record = run.record
    if not isinstance(result, Mapping):
        raise LinearContractError(f"({fn})", "not-a-dict", f"{fn} returned "
                                  f"{type(result).__name__}; return a dict keyed by input name")
    keys = set(record.differentiable)
    if set(result) - keys - set(record.intermediates):
        extra = sorted(set(result) - keys - set(record.intermediates))
        raise LinearContractError(extra[0], "extra-key", f"{fn} returned {extra}, which are not "
                                  "differentiable inputs")
    missing = sorted(keys - set(result))
    if missing:
        raise LinearContractError(missing[0], "missing-key", f"{fn} returned no {what} for "
                                  f"{missing}")
    return {k: _array(result[k], k, f"{what} of {k!r}", np.shape(run.inputs[k]), run.dtype)
            for k in record.differentiable}


def backward(run: CaseRun, dout: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
             ) -> dict[str, np.ndarray]:
    """{input: dS/dinput} from the hand backward for S = sum(dout * out), at the case's point
    or at ``inputs``."""
    _, cache = _call("forward", _forward, run, inputs)
    grads = _call("backward", run.record.backward, np.array(dout, copy=True), cache)
    return _keyed(run, grads, "backward", "gradient")
