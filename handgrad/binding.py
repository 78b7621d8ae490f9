"""A page checked through a binding file: its equations bound, part by part, to records of the
catalogue (or any discovered record), without a record of its own.

A binding file is TOML; each ``[[part]]`` names a ``record`` whose reference gives the values,
the ``equations`` (tags) of the page it covers and the page's ``symbols`` (one line per
symbol, as a record's ``symbols`` field)::

    [[part]]
    record = "mlp-ce-tanh"
    equations = ["S2.4e", "S2.4f"]
    [part.symbols]
    "y_{j}" = "yhat"

``handgrad page PAGE --bind FILE`` prints the page marked with each equation's verdict (see
:func:`check_bound`); without ``--bind`` the page is checked against the records that name it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from handgrad.cases import sample_cases
from handgrad.discovery import derivations, find
from handgrad.errors import DerivationError
from handgrad.pages import check_page, load_page
from handgrad.transcription import worst_status

STATUS_ORDER = {"fail": 0, "not-checkable": 1, "pass": 2, "skipped": 3}


@dataclass(frozen=True)
class Marked:
    """One equation of the page with its verdict over the cases: ``status`` is ``pass``,
    ``fail`` (with ``kind``), ``not-checkable`` (``message`` names the construct) or
    ``unbound`` (no part of the binding covers it)."""

    tag: str
    section: str
    latex: str
    status: str
    kind: str = ""
    message: str = ""
    record: str = ""
    cases: int = 0


def parts(binding: Path) -> list[tuple[object, tuple[str, ...] | None, dict]]:
    """(record with the part's symbols, its equations, the page's shapes it adds) per
    ``[[part]]`` of the file. ``[part.shapes]`` gives a page without a Shapes table the shapes
    of its symbols (one line each); a ``sample`` dimension (the batch, ``"B"``) that no shape
    uses marks the page as written for one sample."""
    try:
        data = tomllib.loads(binding.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DerivationError(f"the binding {binding} cannot be read: {exc}") from None
    out = []
    for i, part in enumerate(data.get("part", [])):
        if "record" not in part:
            raise DerivationError(f"{binding}: part {i + 1} names no record: add record = NAME")
        try:
            record = find(part["record"])
        except Exception as exc:  # noqa: BLE001 - say which part, whatever find raised
            raise DerivationError(f"{binding}: part {i + 1}: {exc}") from None
        symbols = {**record.symbols, **part.get("symbols", {})}
        equations = tuple(part["equations"]) if "equations" in part else None
        shapes = dict(part.get("shapes", {}))
        if "sample" in part:
            shapes[part["sample"]] = ""
        out.append((dataclasses.replace(record, symbols=symbols, equations=equations),
                    equations, shapes))
    return out


def sections(path: Path) -> dict[int, str]:
    """Line number (1-based) -> the heading above it (``## 2.4 Backward`` -> "2.4 Backward")."""
    heading, out = "", {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        out[number] = heading
    return out


def check_bound(page_path: Path, binding: Path | None = None, *, seed: int = 0,
                cases: int = 2, paths=None) -> list[Marked]:
    """Every tagged equation of the page, judged on ``cases`` cases of the record its binding
    part names (without ``binding``: of every discovered record whose page it is)."""
    page = load_page(page_path)
    if binding is not None:
        bound = parts(binding)
    else:
        same = page_path.resolve()
        bound = [(r, r.equations, {}) for r in derivations(paths) if r.reference is not None and
                 r.expect == "pass" and _page_file(r) == same]
    heads = sections(page_path)
    verdicts: dict[str, list] = {}
    owner: dict[str, str] = {}
    counted: dict[str, int] = {}
    for record, _, shapes in bound:
        record = dataclasses.replace(record, page=str(page_path))
        seen = dataclasses.replace(
            page, shapes={**page.shapes, **{k: v for k, v in shapes.items() if v}},
            dims=(*page.dims, *(k for k, v in shapes.items() if not v)))
        for case in sample_cases(record, seed, cases):
            for e in check_page(record, case, seen):
                if e.status == "skipped":
                    continue
                verdicts.setdefault(e.tag, []).append(e)
                owner.setdefault(e.tag, record.name)
                counted[e.tag] = counted.get(e.tag, 0) + 1
    out = []
    for eq in page.equations:
        found = verdicts.get(eq.tag)
        if not found:
            out.append(Marked(eq.tag, heads.get(eq.line, ""), eq.text, "unbound",
                              message="no part of the binding covers this equation"))
            continue
        worst = min(found, key=lambda e: STATUS_ORDER.get(e.status, 9))
        kind = worst.kind
        if kind == "shape" and "free index" in worst.message:
            # The two sides carry different free indices (y_i = f(... w_{jk} ...)): an index
            # typo, which no value could fix, told apart from a wrong value.
            kind = "notation"
        out.append(Marked(eq.tag, heads.get(eq.line, ""), eq.text, worst.status, kind,
                          worst.message, owner[eq.tag], counted[eq.tag]))
    return out


def _page_file(record) -> Path | None:
    from handgrad.pages import page_of

    try:
        page = page_of(record)
    except Exception:  # noqa: BLE001 - a record whose page does not load names no page here
        return None
    return Path(page.path).resolve() if page is not None else None


def summary(marked: Iterable[Marked]) -> dict[str, int]:
    """How many equations are right, wrong, not checkable, unbound."""
    counts = {"pass": 0, "fail": 0, "not-checkable": 0, "unbound": 0}
    for m in marked:
        counts[m.status] = counts.get(m.status, 0) + 1
    return counts


__all__ = ["Marked", "check_bound", "parts", "summary", "worst_status"]
