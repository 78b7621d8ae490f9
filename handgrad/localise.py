"""Where a failing derivation goes wrong: the first wrong gradient in backward order, in its most
informative failing case, and the smallest dimensions at which the same failure persists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from handgrad import config
from handgrad.cases import Case
from handgrad.record import Derivation
from handgrad.report import Report, Result, case_dims, reproduce_command


def path_hint(record: Derivation) -> str:
    """The ``--path`` a reproduce command needs: the record's file, unless the one configured
    path finds it anyway (with several configured paths, one folder per student, a name may
    be defined in more than one, and ``handgrad check NAME`` alone would refuse it)."""
    if not record.origin:
        return ""
    origin = Path(record.origin).resolve()
    cfg = config.load()
    if len(cfg.paths) == 1 and any(origin == p.resolve() or origin.parent == p.resolve()
                                   for p in cfg.paths):
        return ""
    try:
        return str(origin.relative_to(Path.cwd()))
    except ValueError:
        return str(origin)


def _label(check: str, key: str) -> str:
    if check == "autograd":
        return f"dL/d{key}"
    if check == "jvp":
        return "the tangent of " + ("the output" if key == "(output)" else key)
    return f"(H v) of {key}"


def localise(record: Derivation, report: Report) -> list[str]:
    """The first gradient, in backward order, that disagrees with autograd in the most telling
    failing case, per dtype (float64 first); failing that, the first wrong tangent of the hand
    jvp in forward order (its ``jvp_intermediates``, then the output) or the first wrong H v;
    and the command that reproduces the case."""
    telling = report.telling_case()
    if telling is None:
        return []
    case, seed = telling
    results = [r for r in report.results if (r.case, r.data_seed) == telling]
    lines = []
    autograd_by_key = {(r.dtype, r.tensor): r for r in results if r.check == "autograd"}
    headline = _forward_disagrees(results, autograd_by_key)
    if headline:
        lines.append(f"case {case} data-seed {seed} float64: {headline}")
    orders = (("autograd", (*record.intermediates, *record.differentiable)),
              ("jvp", (*record.jvp_intermediates, "(output)")),
              ("hvp", record.differentiable))
    for check, order in orders:
        if headline and check == "autograd":
            continue
        by_key = {(r.dtype, r.tensor): r for r in results if r.check == check}
        for dtype in ("float64", "float32"):
            wrong = [k for k in order if (dtype, k) in by_key and not by_key[(dtype, k)].passed]
            if not wrong:
                continue
            k = wrong[0]
            r = by_key[(dtype, k)]
            right = [k2 for k2 in order[: order.index(k)] if (dtype, k2) in by_key]
            tag = f", see ({r.tag}) in {record.doc or 'its derivation'}" if r.tag else ""
            lines.append(f"case {case} data-seed {seed} {dtype}: first wrong: "
                         f"{_label(check, k)}{tag} [{r.kind}: {r.message}]")
            if right:
                lines.append("  correct before it: " + ", ".join(
                    _label(check, k2) + (f" ({record.tags[k2]})" if k2 in record.tags else "")
                    for k2 in right))
            break
        if lines:
            break
    lines.append(f"  reproduce: {reproduce_command(record.name, case, seed, path_hint(record))}")
    return lines


def _forward_disagrees(results: list[Result], by_key: dict) -> str:
    """The headline when the hand backward agrees with finite differences of the hand forward
    in float64 while autograd disagrees: the gradients are right for the NumPy forward, and it
    is the forward that differs from the reference."""
    fd = [r for r in results if r.check == "fd" and r.dtype == "float64"
          and r.tensor != "(all)"]
    failing = [k for (dtype, k), r in by_key.items() if dtype == "float64" and not r.passed]
    forward = next((r for r in results if r.check == "forward" and r.dtype == "float64"
                    and not r.passed), None)
    how = f" [{forward.kind}: {forward.message}]" if forward is not None else ""
    if forward is not None and by_key and not failing:
        return (f"the forward disagrees with the reference{how}, while every gradient matches "
                "autograd: fix the forward's value (the finite-difference and Taylor failures "
                "differentiate the NumPy forward, so they follow from it)")
    fd_passed = {r.tensor for r in fd if r.status == "pass"}
    if not failing or not all(r.status == "pass" for r in fd) or not set(failing) <= fd_passed:
        return ""
    return (f"the forward disagrees with the reference{how}; the backward is right for the "
            "NumPy forward (finite differences of it agree), so autograd's "
            f"{', '.join('dL/d' + k for k in failing)} differ: fix the forward (or the "
            "reference, if it is the one that is wrong)")


def smallest_failing(record: Derivation, report: Report,
                     run_case: Callable[[Derivation, Case, set[str]], list[Result]]
                     ) -> list[str]:
    """Greedily shrink each dimension, keeping the data seed, while the failure that names the
    report (same check, tensor and kind) persists; a shrink that changes the kind is refused.

    ``run_case`` is :func:`handgrad.check.check_case`, passed in to keep the modules acyclic.
    """
    first = report.kind_result
    if first is None or first.status == "vacuous" or first.kind == "not-implemented":
        return []
    signature = (first.check, first.tensor, first.kind, first.dtype)
    checks = {first.check, "contract"} | ({"autograd"} if first.dtype == "float32" else set())
    dims = {k: v for k, v in case_dims(first.case).items() if k in record.dims}
    if not dims:
        return []
    start = dict(dims)

    def same_failure(candidate: dict[str, int]) -> bool:
        case = Case.of(candidate, first.data_seed, "shrunk")
        return any((r.check, r.tensor, r.kind, r.dtype) == signature and not r.passed
                   for r in run_case(record, case, checks))

    changed = True
    while changed:
        changed = False
        for name, (lo, _) in record.dims.items():
            for value in sorted({lo, (lo + dims[name]) // 2, dims[name] - 1}):
                if lo <= value < dims[name] and same_failure({**dims, name: value}):
                    dims[name] = value
                    changed = True
                    break
    if dims == start:
        return []
    case = Case.of(dims, first.data_seed).describe()
    return [f"  smallest case with the same failure ({first.check} {first.tensor} "
            f"[{first.kind}]): {case}: "
            f"{reproduce_command(record.name, case, first.data_seed, path_hint(record))}"]
