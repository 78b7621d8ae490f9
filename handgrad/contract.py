"""Running the hand functions under their contract: every way a derivation can be malformed is
turned into a result that names the derivation, the input and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from handgrad.record import Derivation


@dataclass
class HandRun:
    """What the hand forward and backward returned, and the contract problems found."""

    out: np.ndarray | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (tensor, kind, message)
    fatal: bool = False

    def add(self, tensor: str, kind: str, message: str, fatal: bool = False) -> None:
        self.problems.append((tensor, kind, message))
        self.fatal = self.fatal or fatal


def _copies(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in inputs.items()}


def _changed(before: np.ndarray, after: np.ndarray) -> bool:
    return before.shape != after.shape or not np.array_equal(before, after, equal_nan=True)


def call_hand(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
              run: HandRun) -> tuple[np.ndarray | None, object]:
    """One forward and backward on private copies; writes into either are reported."""
    args, pristine = _copies(inputs), _copies(inputs)
    try:
        result = record.forward(**args)
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes a result
        run.add("(forward)", "exception", f"forward raised {type(exc).__name__}: {exc}", True)
        return None, None
    if not (isinstance(result, tuple) and len(result) == 2):
        run.add("(forward)", "bad-return", "forward must return (out, cache); got "
                f"{type(result).__name__}", True)
        return None, None
    out = np.asarray(result[0])
    for k in args:
        if _changed(pristine[k], args[k]):
            run.add(k, "mutated-input", f"forward wrote into input {k!r}; work on a copy "
                    f"({k} = {k}.copy()) or use out-of-place operations")
    up = np.array(dout, copy=True)
    try:
        grads = record.backward(up, result[1])
    except Exception as exc:  # noqa: BLE001
        run.add("(backward)", "exception", f"backward raised {type(exc).__name__}: {exc}", True)
        return out, None
    if _changed(np.asarray(dout), up):
        run.add("(upstream)", "mutated-upstream", "backward wrote into its upstream gradient "
                "dout; compute into a new array (dx = dout * ..., not dout *= ...)")
    for k in args:
        if _changed(pristine[k], args[k]) and not any(p[0] == k for p in run.problems):
            run.add(k, "mutated-input", f"backward wrote into input {k!r} (through the cache); "
                    "copy it before modifying")
    return out, grads


def run_hand(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
             dtype: str) -> HandRun:
    run = HandRun()
    out, grads = call_hand(record, inputs, dout, run)
    if run.fatal:
        return run
    run.out = out
    if not np.all(np.isfinite(out)):
        run.add("(output)", "non-finite", "forward returned NaN or inf; check logs and "
                "divisions for the sampled inputs", True)
    if record.update is not None and out.shape != ():
        run.add("(output)", "non-scalar-loss", f"the record has an update rule, so forward must "
                f"return a scalar loss, but it returned shape {out.shape}; sum the loss, or drop "
                "update for a layer with a tensor output", True)
        return run
    if not isinstance(grads, Mapping):
        run.add("(backward)", "not-a-dict", f"backward returned {type(grads).__name__}; return a "
                f"dict keyed by input name, e.g. {{{', '.join(repr(k) for k in record.grad_keys)}:"
                " ...}", True)
        return run
    for k in sorted(record.grad_keys - set(grads)):
        run.add(k, "missing-key", f"backward returned no gradient for {k!r}; add "
                f"grads[{k!r}] (or declare {k!r} in nondiff if it has none)")
    for k in sorted(set(grads) - record.grad_keys):
        why = ("it is declared non-differentiable (nondiff)" if k in record.nondiff
               else "it is neither an input nor a declared intermediate")
        run.add(k, "extra-key", f"backward returned a gradient for {k!r}, but {why}; remove it "
                "or declare it")
    for k in sorted(record.grad_keys & set(grads)):
        g = np.asarray(grads[k])
        if k in record.inputs and g.shape != np.shape(inputs[k]):
            run.grads[k] = g.copy()  # the comparison reports it, with a diagnosis of the shape
            continue
        if not np.issubdtype(g.dtype, np.floating) or g.dtype != np.dtype(dtype):
            run.add(k, "wrong-dtype", f"gradient {k!r} is {g.dtype} for {dtype} inputs; keep the "
                    "input dtype (avoid float64 constants such as np.float64(...) or np.ones(n))")
        if not np.all(np.isfinite(g)):
            run.add(k, "non-finite", f"gradient {k!r} holds NaN or inf at "
                    f"{int((~np.isfinite(g)).sum())} of {g.size} entries")
            continue
        run.grads[k] = g.copy()
    _check_repeatable(record, inputs, dout, run)
    return run


def _check_repeatable(record, inputs, dout, run: HandRun) -> None:
    """A second call on fresh copies must return the same bits."""
    again = HandRun()
    _, grads = call_hand(record, inputs, dout, again)
    if not isinstance(grads, Mapping):
        return
    for k, g in run.grads.items():
        if k in grads and _changed(g, np.asarray(grads[k])):
            run.add(k, "nondeterministic", f"two calls of backward on identical inputs gave "
                    f"different {k!r}; remove hidden state or unseeded randomness")
