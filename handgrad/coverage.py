"""Coverage: whether the checked cases could have caught an error in each gradient at all.

A gradient whose reference is identically zero in a case checks nothing there: any hand value
that is zero too (a sign flip, a factor 2, a dropped term of it) passes. A right record whose
some gradient is zero in every checked case is ``vacuous``, which is not a pass, unless the
record declares that gradient zero on purpose (``zero_grads``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from handgrad.record import Derivation
from handgrad.report import Result

# Cancellation leaves rounding residue of about eps times the largest term; 64 eps of the largest
# gradient in the case is still residue, not a gradient that reaches the loss.
RESIDUE = 64 * float(np.finfo(np.float64).eps)


def live_fraction(grads: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per tensor, the share of entries whose gradient is non-zero (above rounding residue of
    the case's largest gradient)."""
    scale = max((float(np.abs(g).max(initial=0.0)) for g in grads.values()), default=0.0)
    return {k: float(np.mean(np.abs(g) > RESIDUE * scale)) if np.size(g) and scale > 0 else 0.0
            for k, g in grads.items()}


def coverage(record: Derivation, results: list[Result]) -> list[Result]:
    """One row per gradient: the best share of live entries over the checked cases (float64
    autograd; finite differences for a record without a reference, which see the inputs only),
    vacuous when it is zero everywhere, and a declared zero that is not."""
    source = "autograd" if record.reference is not None else "fd"
    seen: dict[str, list[Result]] = {}
    unresolved: dict[str, list[Result]] = {}
    for r in results:
        if r.check == source and r.dtype == "float64":
            (seen if math.isfinite(r.live) else unresolved).setdefault(r.tensor, []).append(r)
    if not seen and not unresolved:
        return []
    rows = []
    what = "reference gradient" if source == "autograd" else "derivative (finite differences)"
    for key in (*record.intermediates, *record.differentiable):
        rs = seen.get(key, [])
        if not rs:
            lost = unresolved.get(key, [])
            if source == "fd" and any(r.status == "unreliable" for r in lost):
                first = lost[0]
                rows.append(Result(
                    derivation=record.name, case=first.case, data_seed=first.data_seed,
                    dtype="float64", check="coverage", tensor=key,
                    tag=record.tags.get(key, ""), status="unreliable",
                    message=f"finite differences resolve no entry of {key!r} in any of the "
                            f"{len(lost)} checked cases (it lies below the rounding of the loss "
                            "over their step), so whether a case could catch an error in it is "
                            "not known: a reference would tell"))
            continue
        best = max(rs, key=lambda r: r.live)
        common = {"derivation": record.name, "case": best.case, "data_seed": best.data_seed,
                  "dtype": "float64", "check": "coverage", "tensor": key,
                  "tag": record.tags.get(key, ""), "live": best.live}
        n = len(rs)
        if key in record.zero_grads:
            if best.live > 0:
                rows.append(Result(status="fail", kind="declared-zero",
                                   message=f"zero_grads declares {key!r} zero "
                                           f"({record.zero_grads[key]}), but its reference "
                                           f"gradient is non-zero at {best.live:.0%} of its "
                                           "entries here; remove it from zero_grads", **common))
            else:
                rows.append(Result(status="pass", message=f"zero on purpose: "
                                   f"{record.zero_grads[key]} (zero in all {n} cases)",
                                   **common))
        elif best.live == 0:
            rows.append(Result(status="vacuous", kind="vacuous",
                               message=f"the {what} of {key!r} is identically zero "
                                       f"in all {n} checked cases, so no case could catch an "
                                       f"error in it: {_advice(key, seen)}", **common))
        else:
            rows.append(Result(status="pass", message=f"non-zero {what} at {best.live:.0%} of "
                               f"the entries (best of {n} cases)", **common))
    return rows


def _advice(key: str, seen: Mapping[str, list[Result]]) -> str:
    """What to do about a gradient zero in every case. Where every other gradient is exercised
    in those same cases the network is alive, and the zero is structural (a forget gate times a
    cell state that starts at zero, at T = 1): declare it, or widen the dims that lift it. Where
    others are dead too, the data left the network dead."""
    others = {k: rs for k, rs in seen.items() if k != key}
    declare = f"zero_grads={{{key!r}: 'why'}}"
    dead = sorted(k for k, rs in others.items() if max(r.live for r in rs) <= 0)
    alive = len(others) - len(dead)
    # A gate multiplied by a state that starts at zero silences its weights and bias together;
    # a dead network silences most gradients. Where most others are exercised, the zero is the
    # first kind.
    if others and alive > len(dead):
        together = (f" (with {', '.join(map(repr, dead))}, zero likewise)" if dead else "")
        scope = ("every other gradient is" if not dead else
                 f"{alive} of the {len(others)} other gradients are")
        return (f"{scope} exercised in these cases, so the zero is structural{together}: a "
                f"term multiplied by a state that starts at zero, such as a forget gate at T = 1; "
                f"declare it with {declare}, or widen the dims that make it non-zero (T >= 2)")
    return ("keep the network alive (fan-in-scaled weights, more classes, a larger batch), or "
            f"declare {declare} if it is zero on purpose")
