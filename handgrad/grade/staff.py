"""The staff's side of a grading run, settled before any submission's code runs.

:func:`read` reads every staff file once (the record files, the modules beside them, the
modules the references come from, the points file), loads the records once with stand-ins for
the submissions' modules, and stops with :class:`StaffError` (naming the file and the line)
when a record file does not load: a broken assignment never reads as a perfect class. The
records are loaded for each submission from those texts (:func:`handgrad.discovery.from_text`),
never from the disk again.

:func:`fingerprint` hashes (sha256) those files and the installed handgrad package; the grader
takes it at the start and again at the end, and :func:`changes` says what changed: an incident
of the run, whatever the sandbox was supposed to prevent.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import handgrad
from handgrad.discovery import Broken, discover_path, python_files
from handgrad.grade.proxies import Missing, module_names, set_aside
from handgrad.record import Derivation


class StaffError(Exception):
    """A staff file that does not load: the run stops before any submission is graded."""


@dataclass(frozen=True)
class Staff:
    sources: tuple[tuple[str, str], ...]  # (absolute path, text) of every staff module
    files: tuple[str, ...]  # every staff file fingerprinted (the modules and the points)
    names: tuple[str, ...]  # the records' names, in order


class _StandIns(types.ModuleType):
    """A submission's module before any submission is loaded: every name is :class:`Missing`."""

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return Missing(None, f"{self.__name__}.{attr}", LookupError(
            "the records were loaded without a submission"))


class StandInFinder:
    """Last on ``sys.meta_path``: the submissions' module names as :class:`_StandIns`."""

    def __init__(self, names: Iterable[str]):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        import importlib.machinery

        if "." in fullname or fullname not in self.names:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return _StandIns(spec.name)

    def exec_module(self, module) -> None:
        """Nothing: every name is a stand-in."""


def _package_inits(file: Path) -> list[Path]:
    inits, folder = [], file.parent
    while (folder / "__init__.py").exists():
        inits.append(folder / "__init__.py")
        folder = folder.parent
    return inits


def _installed(file: Path) -> bool:
    """A file of the Python installation (torch, numpy, the standard library): not the
    staff's."""
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return any(file.is_relative_to(p) for p in prefixes)


def _source_file(fn) -> Path | None:
    try:
        name = inspect.getsourcefile(inspect.unwrap(fn))
    except (TypeError, ValueError):
        return None
    return Path(name).resolve() if name else None


def load_records(paths: Iterable[str], sources: Mapping[str, str] | None,
                 submission_modules: Iterable[str]) -> tuple[list[Derivation], list[Broken]]:
    """The staff's records with stand-ins for the submissions' modules."""
    finder = StandInFinder(submission_modules)
    # a module of the same name that an earlier load left in this process is set aside
    aside = set_aside(finder.names)
    sys.meta_path.append(finder)
    try:
        records, broken = [], []
        for path in paths:
            found, bad = discover_path(Path(path), sources=sources)
            records += found
            broken += bad
    finally:
        sys.meta_path.remove(finder)
        for name in finder.names:
            if isinstance(sys.modules.get(name), _StandIns):
                del sys.modules[name]
        sys.modules.update(aside)
    return records, broken


def read(records: Iterable[str], points: str | None, submissions: Iterable[str]) -> Staff:
    """Read and load the staff's files once (see the module docstring)."""
    records = [str(Path(p).resolve()) for p in records]
    files: list[Path] = []
    for path in records:
        for file in python_files(Path(path)):
            files += [file.resolve(), *(p.resolve() for p in _package_inits(file))]
    texts = {}
    for file in files:
        try:
            texts[str(file)] = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise StaffError(f"the staff's record file {file} cannot be read: {exc}") from None
    names: set[str] = set()
    for folder in submissions:
        if Path(folder).is_dir():
            names |= module_names(Path(folder))
    found, broken = load_records(records, texts, names)
    if broken:
        raise StaffError("the staff's records do not load, so nothing was graded:\n" +
                         "\n".join(f"  {b.module}: {b.message}" for b in broken))
    if not found:
        raise StaffError(f"{', '.join(records)} holds no record: nothing to grade")
    # the files the references come from (beside the records, or a reference/ folder)
    for record in found:
        for fn in (record.reference, record.hvp_reference):
            file = _source_file(fn) if fn is not None else None
            if file is None or str(file) in texts or _installed(file) or not file.is_file():
                continue
            for extra in [file, *_package_inits(file)]:
                texts.setdefault(str(extra.resolve()), extra.read_text())
    fingerprinted = sorted(texts) + ([str(Path(points).resolve())] if points else [])
    return Staff(tuple(sorted(texts.items())), tuple(fingerprinted),
                 tuple(r.name for r in found))


def installation_files() -> list[Path]:
    """The installed handgrad package's files (its caches left out: the grader writes those)."""
    root = Path(handgrad.__file__).resolve().parent
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix != ".pyc")


def fingerprint(staff_files: Iterable[str]) -> dict[str, str]:
    """sha256 of every staff file and every file of the installed handgrad."""
    out = {}
    for path in [*map(Path, staff_files), *installation_files()]:
        try:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[str(path)] = "missing"
    return out


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What changed between two fingerprints, one sentence per file."""
    out = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if old is None:
            out.append(f"{path} appeared during the run (a file added to the installation)")
        elif new == "missing":
            out.append(f"{path} was removed during the run")
        else:
            out.append(f"{path} changed during the run (sha256 {old[:12]} -> {new[:12]})")
    return out
