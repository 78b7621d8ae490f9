"""``handgrad check --watch``: one warm process (torch imported once) that re-checks, on each
save, the records whose module, page (``.md``) or reference changed, and prints their lines.

Files are watched with watchfiles (Rust's ``notify``: inotify on Linux, no polling of ours).
What a record depends on is read once its module is loaded: the record file, its Markdown page,
the files of its functions (forward, backward, the reference, jvp, hvp), and the project modules
its module refers to (``from layers import affine_forward``, ``from reference import mlp``).
On a change, every project module (one whose file lies under a watched folder) is dropped from
``sys.modules`` and the affected record files are imported afresh, so an edit to a helper or a
reference is seen as a fresh ``python`` would see it. A file that no longer imports (a syntax
error half-way through an edit) is one line; the watch goes on, and the next save is checked.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

from handgrad import config, parallel
from handgrad.discovery import Broken, discover_path, python_files
from handgrad.record import Derivation
from handgrad.report import Report

STEP_MS = 30
"""watchfiles yields once no new change has come for this long: an editor's save (write,
rename, chmod) is one batch, and the wait adds little to the time from save to verdict."""


@dataclass
class Batch:
    """One round of checking: the files that changed (empty for the first), what was
    re-checked, what did not load, and when the change was seen and the verdicts were ready
    (``time.perf_counter``)."""

    changed: list[Path]
    reports: list[Report]
    broken: list[Broken]
    seen: float
    done: float = 0.0
    names: list[str] = field(default_factory=list)
    linear: bool = False


ENGINE = Path(__file__).resolve().parent
"""handgrad's own package: never dropped from ``sys.modules``, even in an editable install
inside the project."""


@cache
def _resolved(file: str) -> Path | None:
    """The real path of a module's file, cached: a watch looks at every module of the process
    on each save, and resolving thousands of paths costs 70 ms."""
    try:
        return Path(file).resolve()
    except (OSError, ValueError):
        return None


def _project(file: str | None, roots: Sequence[Path]) -> Path | None:
    """The resolved file when it lies under one of ``roots`` and is neither an installed
    package nor handgrad itself; else None."""
    path = _resolved(file) if isinstance(file, str) and file else None
    if path is None or "site-packages" in path.parts or path.is_relative_to(ENGINE) \
            or not any(path.is_relative_to(r) for r in roots):
        return None
    return path


def _function_file(fn) -> str | None:
    while isinstance(fn, partial):
        fn = fn.func
    try:
        return inspect.getsourcefile(fn)
    except (TypeError, OSError):
        return None


def dependencies(file: Path, records: Iterable[Derivation], root: Path,
                 roots: Sequence[Path]) -> set[Path]:
    """The files a record file's verdicts depend on (see the module docstring)."""
    file = file.resolve()
    deps = {file}
    folder = [file.parent]
    module = next((m for m in list(sys.modules.values())
                   if _project(getattr(m, "__file__", None), folder) == file), None)
    candidates: list[str | None] = []
    if module is not None:
        for value in vars(module).values():
            if inspect.ismodule(value):
                candidates.append(getattr(value, "__file__", None))
            elif inspect.isfunction(value) or inspect.isclass(value) or isinstance(value,
                                                                                   partial):
                # By the function's own file: discovery forgets a plain folder's sibling
                # modules once the record file is loaded.
                candidates.append(_function_file(value))
    for record in records:
        if record.doc:
            doc = Path(record.doc)
            candidates.append(str(doc if doc.is_absolute() else root / doc))
        for name in ("forward", "backward", "reference", "jvp", "hvp", "hvp_reference"):
            fn = getattr(record, name, None)
            if fn is not None:
                candidates.append(_function_file(fn))
    for candidate in candidates:
        path = _project(candidate, roots)
        if path is not None:
            deps.add(path)
    return deps


class Watcher:
    """The state of a watch: the record files, what each depends on, the options of the check.

    ``check_changed`` does one round for a set of changed paths; :func:`run` feeds it from
    watchfiles. Kept apart so that a test can drive it without a file system watcher.
    """

    def __init__(self, paths: Sequence[str | Path] | None, names: Sequence[str],
                 options: parallel.Options, report: Callable[[Batch], None]):
        self.cfg = config.load()
        given = [Path(p) for p in paths] if paths else list(self.cfg.paths)
        self.paths = [p.resolve() for p in given]
        self.names = list(names)
        self.options = options
        self.report = report
        self.root = self.cfg.root
        self.folders = sorted({p if p.is_dir() else p.parent for p in self.paths})
        # The project: the folder of the pyproject.toml, else the record folders.
        self.roots = [self.root] if config.find_pyproject() else list(self.folders)
        self.deps: dict[Path, set[Path]] = {}
        # Files that held a chosen record or did not load, the last time they were read: with
        # names given, only these are re-checked.
        self.relevant: set[Path] = set()

    def watched(self) -> list[Path]:
        """The folders to watch: the record folders and those of every dependency, leaving out
        folders inside another."""
        folders = set(self.folders) | {d.parent for deps in self.deps.values() for d in deps}
        return sorted(f for f in folders if f.exists() and
                      not any(f != g and f.is_relative_to(g) for g in folders))

    def record_files(self) -> list[Path]:
        return [f.resolve() for p in self.paths if p.exists() for f in python_files(p)]

    def _wanted(self, record: Derivation) -> bool:
        return not self.names or any(record.name == n or record.name.startswith(n)
                                     for n in self.names)

    def _forget_project_modules(self) -> None:
        for name, module in list(sys.modules.items()):
            if _project(getattr(module, "__file__", None), self.roots) is not None:
                del sys.modules[name]

    def check_files(self, files: Iterable[Path], changed: list[Path], seen: float) -> Batch:
        self._forget_project_modules()
        chosen: list[tuple[str, Derivation]] = []
        broken: list[Broken] = []
        for file in files:
            records, bad = discover_path(file, self.root)
            broken += bad
            self.deps[file] = dependencies(file, records, self.root, self.roots)
            wanted = [(str(file), r) for r in records if self._wanted(r)]
            if wanted or bad:
                self.relevant.add(file)
            else:
                self.relevant.discard(file)
            chosen += wanted
        reports = parallel.check_many(chosen, self.options) if chosen else []
        batch = Batch(changed, reports, broken, seen, time.perf_counter(),
                      [r.name for _, r in chosen],
                      any(r.jvp is not None or r.hvp is not None for _, r in chosen))
        self.report(batch)
        return batch

    def first(self) -> Batch:
        return self.check_files(self.record_files(), [], time.perf_counter())

    def affected(self, changed: Iterable[Path]) -> list[Path]:
        changed = {Path(c).resolve() for c in changed}
        files = self.record_files()
        hit = [f for f in files if f in changed or self.deps.get(f, {f}) & changed]
        return [f for f in hit if not self.names or f in self.relevant or f not in self.deps]

    def check_changed(self, changed: Iterable[Path], seen: float | None = None) -> Batch | None:
        changed = sorted({Path(c).resolve() for c in changed})
        files = self.affected(changed)
        if not files:
            return None
        return self.check_files(files, changed, time.perf_counter() if seen is None else seen)


def run(watcher: Watcher, stop: threading.Event | None = None) -> None:
    """Check everything once, then each change until ``stop`` is set or Ctrl-C."""
    from watchfiles import PythonFilter, watch

    watcher.first()
    try:
        for changes in watch(*watcher.watched(),
                             watch_filter=PythonFilter(extra_extensions=(".md",)),
                             step=STEP_MS, stop_event=stop, raise_interrupt=False):
            seen = time.perf_counter()
            watcher.check_changed([Path(p) for _, p in changes], seen)
    except KeyboardInterrupt:
        pass
