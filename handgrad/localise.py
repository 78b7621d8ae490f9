"""Where a failing case goes wrong: the first wrong gradient in backward order, and the smallest
dimensions at which it still fails."""

from __future__ import annotations

from collections.abc import Callable

from handgrad.cases import Case
from handgrad.record import Derivation
from handgrad.report import Result, reproduce_command


def localise(record: Derivation, results: list[Result]) -> list[str]:
    """The first gradient, in backward order, that disagrees with autograd, per dtype."""
    lines = []
    order = (*record.intermediates, *record.differentiable)
    first = next((r for r in results if not r.passed), None)
    where = f"case {first.case} data-seed {first.data_seed}"
    by_key = {(r.dtype, r.tensor): r for r in results if r.check == "autograd"}
    for dtype in ("float64", "float32"):
        wrong = [k for k in order if (dtype, k) in by_key and not by_key[(dtype, k)].passed]
        if not wrong:
            continue
        k = wrong[0]
        r = by_key[(dtype, k)]
        right = [k2 for k2 in order[: order.index(k)] if (dtype, k2) in by_key]
        tag = f", see ({r.tag}) in {record.doc or 'its derivation'}" if r.tag else ""
        lines.append(f"{where} {dtype}: first wrong: dL/d{k}{tag} [{r.kind}: {r.message}]")
        if right:
            lines.append("  correct before it: " + ", ".join(
                f"dL/d{k2}" + (f" ({record.tags[k2]})" if k2 in record.tags else "")
                for k2 in right))
        break
    lines.append(f"  reproduce: {reproduce_command(record.name, first.case, first.data_seed)}")
    return lines


def smallest_failing(record: Derivation, first: Result, failed: list[Result],
                     run_case: Callable[[Derivation, Case, set[str]], list[Result]]) -> list[str]:
    """Greedily shrink each dimension, keeping the data seed, while the same check still fails.

    ``run_case`` is :func:`handgrad.check.check_case`, passed in to keep the modules acyclic.
    """
    checks = {r.check for r in failed} | {"contract"}
    dims = {k: v for k, v in _dims_of(first.case).items() if k in record.dims}
    start = dict(dims)

    def fails(candidate: dict[str, int]) -> bool:
        case = Case.of(candidate, first.data_seed, "shrunk")
        return any(not r.passed for r in run_case(record, case, checks))

    changed = True
    while changed:
        changed = False
        for name, (lo, _) in record.dims.items():
            for value in sorted({lo, (lo + dims[name]) // 2, dims[name] - 1}):
                if lo <= value < dims[name] and fails({**dims, name: value}):
                    dims[name] = value
                    changed = True
                    break
    if dims == start:
        return []
    case = Case.of(dims, first.data_seed).describe()
    return [f"  smallest failing case: {case}: "
            f"{reproduce_command(record.name, case, first.data_seed)}"]


def _dims_of(case: str) -> dict[str, int]:
    return {k: int(v) for k, v in (p.split("=") for p in case.split(",") if p)}
