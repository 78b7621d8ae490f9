"""Discovery: every :class:`Derivation` defined at module level in the ``derivations`` package."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, replace
from pathlib import Path

from handgrad.record import Derivation, DerivationError


@dataclass(frozen=True)
class Broken:
    """A derivation module that failed to import or holds malformed records."""

    module: str
    message: str


def _records_in(module) -> list[Derivation]:
    found = []
    for value in vars(module).values():
        items = value if isinstance(value, list | tuple) else [value]
        found += [v for v in items if isinstance(v, Derivation)]
    return found


def discover(package: str = "derivations") -> tuple[list[Derivation], list[Broken]]:
    """(records, broken modules). A broken module never hides the others."""
    pkg = importlib.import_module(package)
    records: dict[str, Derivation] = {}
    seen: set[int] = set()
    broken = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        name = f"{package}.{info.name}"
        try:
            module = importlib.import_module(name)
        except DerivationError as exc:
            broken.append(Broken(name, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - report, keep discovering
            broken.append(Broken(name, f"importing {name} raised {type(exc).__name__}: {exc}"))
            continue
        here = Path(module.__file__).parent
        stems = (info.name, info.name.lstrip("_").split("_")[0])
        doc = next((here / f"{s}.md" for s in stems if (here / f"{s}.md").exists()), None)
        for record in _records_in(module):
            if id(record) in seen:
                continue
            seen.add(id(record))
            if record.name in records:
                broken.append(Broken(name, f"two records are named {record.name!r}; rename one"))
                continue
            if not record.doc and doc is not None:
                record = replace(record, doc=f"{package}/{doc.name}")
            records[record.name] = record
    return list(records.values()), broken


def derivations() -> list[Derivation]:
    """Every discovered derivation record, in discovery order."""
    return discover()[0]


def find(name: str) -> Derivation:
    records = {r.name: r for r in derivations()}
    if name not in records:
        close = sorted(n for n in records if name.split("-")[0] in n)[:8]
        raise DerivationError(f"no derivation named {name!r}" +
                              (f"; did you mean one of {close}?" if close else
                               f"; known: {sorted(records)[:12]}"))
    return records[name]
