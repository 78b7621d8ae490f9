"""Running the hand functions under their contract: every way a derivation can be malformed is
turned into a result that names the derivation, the input and the fix."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from handgrad.record import Derivation

FATAL_KINDS = ("exception", "bad-return", "not-a-dict", "not-implemented")


def raised(what: str, exc: Exception, fix: str) -> tuple[str, str]:
    """(kind, message) for user code that raised; a NotImplementedError is a TODO left in a
    template (``handgrad new``), not a bug."""
    if isinstance(exc, NotImplementedError):
        return "not-implemented", f"{what} is not implemented yet ({exc or 'TODO'}): fill in its " \
                                  "TODOs"
    return "exception", f"{what} raised {type(exc).__name__}: {exc}" + (f"; {fix}" if fix else "")
# Deep enough for a cache of caches (a network of layers, each with its own tuple); deeper
# structures are not walked.
MAX_DEPTH = 8
OPAQUE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
          type)


@dataclass
class HandRun:
    """What the hand forward and backward returned, and the contract problems found.

    ``problems`` holds (tensor, kind, message, status): status "fail" or "error" for a broken
    contract, "warning" for what is allowed but worth saying (a float32 input answered in
    float64)."""

    out: np.ndarray | None = None
    dout: np.ndarray | None = None  # the upstream gradient backward was given
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)
    fatal: bool = False

    def add(self, tensor: str, kind: str, message: str, fatal: bool = False,
            status: str = "") -> None:
        status = status or ("error" if kind in FATAL_KINDS else "fail")
        self.problems.append((tensor, kind, message, status))
        self.fatal = self.fatal or fatal


def _copies(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True) for k, v in inputs.items()}


def _changed(before: np.ndarray, after: np.ndarray) -> bool:
    return before.shape != after.shape or not np.array_equal(before, after, equal_nan=True)


def _digest(a: np.ndarray) -> str:
    h = hashlib.blake2b(f"{a.dtype}{a.shape}".encode(), digest_size=16)
    if a.dtype.hasobject:
        h.update(repr(a.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fingerprint(obj, path: str = "cache") -> dict[str, tuple[object, str]]:
    """path -> (the array, digest) for every array reachable from ``obj``, and path ->
    (None, repr) for every scalar, through tuples, lists, dicts, dataclasses and object
    attributes.

    An object with a ``_handgrad_state()`` method (an adapter's cache around a user's layer) is
    fingerprinted by what that method returns: the state that backward must not change."""
    out: dict[str, tuple[object, str]] = {}
    seen: set[int] = set()

    def walk(o, p: str, depth: int) -> None:
        if depth > MAX_DEPTH or isinstance(o, OPAQUE):
            return
        state = getattr(o, "_handgrad_state", None)
        if callable(state) and not isinstance(o, type):
            o = state()
        if isinstance(o, np.ndarray):
            if id(o) not in seen:
                seen.add(id(o))
                out[p] = (o, _digest(o))
            return
        if o is None or isinstance(o, int | float | complex | str | bytes | np.generic):
            out[p] = (None, repr(o))
            return
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, list | tuple):
            out[p + ".__len__"] = (None, str(len(o)))
            for i, v in enumerate(o):
                walk(v, f"{p}[{i}]", depth + 1)
        elif isinstance(o, Mapping):
            for k in sorted(o, key=repr):
                walk(o[k], f"{p}[{k!r}]", depth + 1)
        elif dataclasses.is_dataclass(o) or hasattr(o, "__dict__"):
            for k, v in sorted(vars(o).items()):
                walk(v, f"{p}.{k}", depth + 1)

    walk(obj, path, 0)
    return out


def _cache_changes(before: dict, after: dict, inputs: list[np.ndarray]) -> list[str]:
    """Paths whose content changed (or vanished), leaving out the arrays that are (views of)
    ``inputs`` (the inputs and the forward's output): those are reported on their own."""
    def is_input(a) -> bool:
        return a is not None and any(np.may_share_memory(a, x) for x in inputs)

    return [p for p, (a, digest) in before.items()
            if after.get(p, (None, None))[1] != digest and not is_input(a)]


def call_hand(record: Derivation, inputs: Mapping[str, np.ndarray], dout: np.ndarray,
              run: HandRun) -> tuple[np.ndarray | None, object]:
    """One forward and backward on private copies; writes into either are reported."""
    args, pristine = _copies(inputs), _copies(inputs)
    try:
        result = record.forward(**args)
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes a result
        run.add("(forward)", *raised("forward", exc, ""), True)
        return None, None
    if not (isinstance(result, tuple) and len(result) == 2):
        run.add("(forward)", "bad-return", "forward must return (out, cache); got "
                f"{type(result).__name__}", True)
        return None, None
    out = np.array(result[0], copy=True)
    for k in args:
        if _changed(pristine[k], args[k]):
            run.add(k, "mutated-input", f"forward wrote into input {k!r}; work on a copy "
                    f"({k} = {k}.copy()) or use out-of-place operations")
    run.dout = np.array(dout(out.shape) if callable(dout) else dout, copy=True)
    up = run.dout.copy()
    before = fingerprint(result[1])
    out_digest = _digest(np.asarray(result[0])) if isinstance(result[0], np.ndarray) else None
    try:
        grads = record.backward(up, result[1])
    except Exception as exc:  # noqa: BLE001
        run.add("(backward)", *raised("backward", exc, ""), True)
        return out, None
    if _digest(up) != _digest(run.dout):
        run.add("(upstream)", "mutated-upstream", f"backward wrote into its upstream gradient "
                f"{_written_part(record, result[1], up, run.dout)}; compute into a new array "
                "(dx = dout * ..., not dout *= ... or dout[mask] = 0)")
    for k in args:
        if _changed(pristine[k], args[k]) and not any(p[0] == k for p in run.problems):
            run.add(k, "mutated-input", f"backward wrote into input {k!r} (through the cache); "
                    "copy it before modifying")
    after = fingerprint(result[1])
    # The forward's output, when the cache holds it, is reported once below, as the output.
    shared = [*args.values(), *([result[0]] if isinstance(result[0], np.ndarray) else [])]
    changed = _cache_changes(before, after, shared)
    if out_digest is not None and _digest(result[0]) != out_digest:
        run.add("(cache)", "mutated-cache", "backward wrote into the forward's output (in a "
                "network it is the next layer's input): compute into new arrays (out * mask, "
                "not out *= mask)")
    undeclared = [p for p in changed if not _declared(p, record.writes)]
    if undeclared:
        grads = _judge_bookkeeping(record, result[1], run.dout, grads, undeclared, before,
                                   after, run)
    return out, grads


_NAMES = re.compile(r"\.([A-Za-z_]\w*)|\['([^']*)'\]")


def _declared(path: str, writes: frozenset[str]) -> bool:
    """Whether ``writes`` names ``path`` (``cache['t']``, ``cache.state.t``) by one of its
    names, in full, or by a path above it (``cache[2]`` for ``cache[2][0]``)."""
    return path in writes or any((a or b) in writes for a, b in _NAMES.findall(path)) \
        or any(path.startswith(w) and path[len(w):][:1] in (".", "[") for w in writes)


def _is_layer(o) -> bool:
    """A sub-layer inside a wrapper: an object with a backward method of its own."""
    return hasattr(o, "__dict__") and not isinstance(o, type) and any(
        "backward" in m and callable(getattr(o, m, None)) for m in dir(type(o)))


def _declaration(path: str, cache) -> str:
    """The name to declare for a changed ``path``: its first name, or, below a sub-layer of a
    wrapper, the name inside that layer (its ``caches``, never the whole layer)."""
    names = [a or b for a, b in _NAMES.findall(path)]
    o = getattr(cache, "_handgrad_state", None)
    o = o() if callable(o) and not isinstance(cache, type) else cache
    for name in names:
        try:
            o = o[name] if isinstance(o, Mapping) else getattr(o, name)
        except (AttributeError, KeyError, TypeError):
            return name
        if not _is_layer(o):
            return name
    return names[-1] if names else path


def _writes_hint(paths: list[str], cache) -> str:
    """writes=(...) naming every path at once, as valid Python."""
    return "writes=" + repr(tuple(sorted({_declaration(p, cache) for p in paths})))


def _dtype_changes(before: dict, after: dict) -> list[tuple[str, np.dtype, np.dtype]]:
    """(path, dtype before, dtype after) for every array of the cache that backward replaced by
    one of another float dtype (a parameter its own optimizer step returned in float64)."""
    out = []
    for p, (a, _) in before.items():
        b = after.get(p, (None, None))[0]
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype != b.dtype \
                and np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
            out.append((p, a.dtype, b.dtype))
    return out


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")


def _judge_bookkeeping(record: Derivation, cache, dout: np.ndarray, grads, changed: list[str],
                       before: dict, after: dict, run: HandRun):
    """Backward changed what forward left in its cache. The gradients of a fresh forward and
    backward are checked by the oracles; the change matters only to a second backward on the
    same cache. Run that second backward: the same gradients make the change bookkeeping (a
    warning); other gradients, or an exception, make it ``mutated-cache`` unless only integer
    counters changed (a step counter that a second backward would start from)."""
    if not isinstance(grads, Mapping):
        return grads
    first = {k: np.array(v, copy=True) for k, v in grads.items()}
    declare = f"declare it on the record with {_writes_hint(changed, cache)}"
    promoted = _dtype_changes(before, after)
    try:
        again = record.backward(np.array(dout, copy=True), cache)
        differ = sorted(k for k in first if not isinstance(again, Mapping) or k not in again
                        or _changed(first[k], np.asarray(again[k])))
        # The same sums in a wider dtype round differently, by a few eps of the narrower per
        # term: 1e3 eps of the largest entry separates that from other values.
        retyped = differ and all(
            np.asarray(again[k]).dtype != first[k].dtype and np.issubdtype(
                first[k].dtype, np.floating) and np.shape(again[k]) == first[k].shape
            and np.allclose(first[k], np.asarray(again[k], np.float64), rtol=0, atol=1e3 * float(
                np.finfo(first[k].dtype).eps) * float(np.abs(first[k]).max(initial=0.0)))
            for k in differ)
        why = (f"returns {', '.join(map(repr, differ))} in "
               f"{np.asarray(again[differ[0]]).dtype} instead of {first[differ[0]].dtype}"
               if retyped else
               f"returns other gradients for {', '.join(map(repr, differ))}" if differ else "")
    except Exception as exc:  # noqa: BLE001 - the second call is ours; its failure is evidence
        why = f"raises {type(exc).__name__}: {exc}"
    counters = all(before[p][0] is None and _is_int(before[p][1]) and
                   _is_int(after.get(p, (None, ""))[1]) for p in changed)
    if promoted and why:
        shown = ", ".join(f"{p} from {a} to {b}" for p, a, b in promoted)
        others = [p for p in changed if p not in {q for q, _, _ in promoted}]
        also = (f"; it also changed {_shown(others)} ({declare} if that is by design)"
                if others else "")
        run.add("(cache)", "step-dtype", f"backward's own step changed the dtype of {shown}, "
                f"so a second backward on the same cache {why}: keep each parameter's dtype "
                "in the step (an optimizer buffer made with np.zeros(shape) is float64: "
                "np.zeros_like(w), or .astype(w.dtype) on what the step returns)" + also,
                status="fail" if record.strict_dtype else "warning")
    elif not why:
        run.add("(cache)", "cache-bookkeeping", f"backward changed {_shown(changed)} in its "
                "cache, but a second backward on the same cache returns the same gradients: "
                f"bookkeeping, not a gradient error ({declare} to say it is by design)",
                status="warning")
    elif counters:
        run.add("(cache)", "cache-bookkeeping", f"backward changed the counter(s) "
                f"{_shown(changed)} in its cache, and a second backward on the same cache "
                f"{why}: only a second backward on the same cache sees this, not a gradient "
                f"error ({declare} to say it is by design)", status="warning")
    else:
        run.add("(cache)", "mutated-cache", f"backward changed {_shown(changed)} in its cache, "
                f"and a second backward on the same cache {why}: if that is bookkeeping by "
                f"design (a step counter, an accumulator, an optimizer's buffer), {declare}; "
                "otherwise compute into new arrays (x * mask, not x *= mask) instead of "
                "writing into cached ones")
    return first


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() or bool(re.fullmatch(r"np\.int\d+\(-?\d+\)", text))


def _written_part(record: Derivation, cache, after: np.ndarray, before: np.ndarray) -> str:
    """Which upstream gradient was written: of several outputs joined into one (an adapter's
    ``outputs=``), the ones whose part of ``dout`` changed, by name."""
    shapes = getattr(cache, "out_shapes", None)
    if not shapes or len(shapes) < 2 or after.shape != before.shape:
        return "dout"
    names = record.output_names if len(record.output_names) == len(shapes) else \
        tuple(f"output {i}" for i in range(len(shapes)))
    ends = np.cumsum([0, *(math.prod(s) for s in shapes)])
    changed = np.ravel(_different(after, before))
    written = [f"d{n}" if n.isidentifier() else f"the gradient of {n}"
               for n, lo, hi in zip(names, ends[:-1], ends[1:]) if changed[lo:hi].any()]
    return (f"{' and '.join(written)} (of the {len(shapes)} upstream gradients "
            f"{', '.join(names)})")


def _different(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def _dtype_problem(run: HandRun, tensor: str, what: str, got: np.dtype, dtype: str,
                   strict: bool) -> bool:
    """Check one returned dtype against the inputs' float dtype; True when the value is usable.

    Wider floats (float64 answers to float32 inputs, as code with np.zeros accumulators gives)
    are a warning unless the record is strict; narrower floats and non-floats lose values."""
    want = np.dtype(dtype)
    if got == want:
        return True
    if not np.issubdtype(got, np.floating):
        run.add(tensor, "wrong-dtype", f"{what} is {got} for {dtype} inputs; return floats of "
                "the input dtype")
        return False
    if got.itemsize > want.itemsize and not strict:
        run.add(tensor, "dtype-promoted", f"{dtype} inputs gave {got} for {what}; compared at the "
                f"{dtype} tolerance (declare strict_dtype=True to make this a failure)",
                status="warning")
        return True
    why = "precision is lost" if got.itemsize < want.itemsize else "the record is strict_dtype"
    run.add(tensor, "wrong-dtype", f"{what} is {got} for {dtype} inputs ({why}); keep the input "
            "dtype (avoid constants such as np.float64(...), np.zeros(n) without dtype=, or "
            ".astype casts)")
    return True


def run_hand(record: Derivation, inputs: Mapping[str, np.ndarray], dout, dtype: str) -> HandRun:
    """Forward and backward under the contract; ``dout`` is the upstream gradient, or a function
    of the output's shape that makes it."""
    run = HandRun()
    out, grads = call_hand(record, inputs, dout, run)
    run.out = out
    if run.fatal:
        return run
    if np.issubdtype(out.dtype, np.floating):
        _dtype_problem(run, "(output)", "the forward's output", out.dtype, dtype,
                       record.strict_dtype)
    if not np.all(np.isfinite(out)):
        run.add("(output)", "non-finite", "forward returned NaN or inf; check logs and "
                "divisions for the sampled inputs", True)
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
        if not _dtype_problem(run, k, f"gradient {k!r}", g.dtype, dtype, record.strict_dtype):
            continue
        if not np.all(np.isfinite(g)):
            run.add(k, "non-finite", f"gradient {k!r} holds NaN or inf at "
                    f"{int((~np.isfinite(g)).sum())} of {g.size} entries")
            continue
        run.grads[k] = g.copy()
    _check_repeatable(record, inputs, run.dout, run)
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
