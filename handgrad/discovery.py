"""Discovery: every :class:`Derivation` defined at module level in the Python files of a folder
or a file, wherever it lives.

A file inside a package (its folder has ``__init__.py``) is imported under its dotted name with
the package's parent on ``sys.path``, so ``from derivations import mlp`` inside it works, as in
this repository. A file in a plain folder is loaded on its own, with its folder on ``sys.path``
while it loads (``from layers import affine_forward`` finds the sibling file), under a name of
its own; the sibling modules it imported are forgotten afterwards, so that another folder's
``layers.py`` (the next student's) is loaded afresh. A file that fails to import is reported and
never hides the others.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.abc
import importlib.util
import os
import sys
import traceback
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from handgrad import config, contain
from handgrad.record import Derivation, DerivationError


@dataclass(frozen=True)
class Broken:
    """A file that failed to import or holds malformed records."""

    module: str
    message: str


def _records_in(module) -> list[Derivation]:
    found = []
    for value in vars(module).values():
        items = value if isinstance(value, list | tuple) else [value]
        found += [v for v in items if isinstance(v, Derivation)]
    return found


def python_files(path: Path) -> list[Path]:
    """The record files under ``path``: itself if a file, else its ``*.py`` (not recursive)
    in name order, leaving out ``__init__.py`` and ``conftest.py``."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.py") if p.name not in ("__init__.py", "conftest.py"))


def _package_root(file: Path) -> tuple[Path, str] | None:
    """(folder to put on sys.path, dotted module name) for a file inside a package."""
    parts = [file.stem]
    folder = file.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return (folder, ".".join(parts)) if len(parts) > 1 else None


def _within(module, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    try:
        return file is not None and Path(file).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


class _TextLoader(importlib.abc.SourceLoader):
    """A module whose source was read earlier (:func:`from_text`), not read from disk again."""

    def __init__(self, path: str, text: str):
        self.path, self.text = path, text

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        if path != self.path:
            raise OSError(f"{path} was not read with the records")
        return self.text.encode()


class _TextFinder(importlib.abc.MetaPathFinder):
    def __init__(self, sources: Mapping[str, str]):
        self.sources = sources

    def find_spec(self, fullname, path=None, target=None):
        last = fullname.rpartition(".")[2]
        for folder in path if path is not None else sys.path:
            for file, package in ((os.path.join(folder, last, "__init__.py"), True),
                                  (os.path.join(folder, f"{last}.py"), False)):
                file = os.path.abspath(file)
                if file in self.sources:
                    return importlib.util.spec_from_file_location(
                        fullname, file, loader=_TextLoader(file, self.sources[file]),
                        submodule_search_locations=[os.path.dirname(file)] if package else None)
        return None


@contextlib.contextmanager
def from_text(sources: Mapping[str, str] | None) -> Iterator[None]:
    """While it lasts, a module whose file (an absolute path) is a key of ``sources`` is
    imported from that text, whatever the file holds now: the staff's files of a grading run,
    read once before any submission's code runs."""
    if not sources:
        yield
        return
    finder = _TextFinder(sources)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _line_of(exc: BaseException, file: Path) -> str:
    """`` (line N)``: where in ``file`` the exception was raised, when it was raised there."""
    if isinstance(exc, SyntaxError):
        return ""  # its message names the line already
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
             if os.path.abspath(f.filename) == str(file.resolve())]
    return f" (line {lines[-1]})" if lines else ""


def load_module(file: Path, sources: Mapping[str, str] | None = None):
    """Import one record file (see the module docstring); from ``sources[file]`` when given
    (see :func:`from_text`)."""
    file = file.resolve()
    packaged = _package_root(file)
    if packaged is not None:
        root, dotted = packaged
        top = dotted.split(".")[0]
        loaded = sys.modules.get(top)
        if loaded is not None and not _within(loaded, root / top):
            for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[name]
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        return importlib.import_module(dotted)
    folder = file.parent
    before = set(sys.modules)
    tag = hashlib.blake2b(str(file).encode(), digest_size=6).hexdigest()
    name = f"handgrad_records_{tag}_{file.stem}"
    sys.path.insert(0, str(folder))
    try:
        text = (sources or {}).get(str(file))
        spec = importlib.util.spec_from_file_location(
            name, file, loader=None if text is None else _TextLoader(str(file), text))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
        for added in set(sys.modules) - before:
            if added != name and _within(sys.modules[added], folder):
                del sys.modules[added]
    return module


def load_tolerant(file: Path, first: DerivationError, sources: Mapping[str, str] | None = None
                  ) -> tuple[object | None, list[str]]:
    """A file in which some record is malformed, run again one top-level statement at a time
    (and one element at a time of a list or tuple of records), so that the malformed record is
    an error of its own and the others are still checked. Returns the module (None when its
    source cannot be read) and one message per malformed record."""
    try:
        source = (sources or {}).get(str(file.resolve())) or file.read_text()
        tree = ast.parse(source, str(file))
    except (OSError, SyntaxError):
        return None, [str(first)]
    packaged = _package_root(file.resolve())
    module = types.ModuleType(packaged[1] if packaged else f"handgrad_records_{file.stem}")
    module.__file__ = str(file)
    module.__package__ = packaged[1].rpartition(".")[0] if packaged else None
    namespace = vars(module)
    malformed: list[str] = []
    before = set(sys.modules)
    sys.path.insert(0, str(file.parent))
    try:
        for statement in tree.body:
            try:
                _run(statement, namespace, file)
            except DerivationError as exc:
                if not _run_elements(statement, namespace, file, malformed):
                    malformed.append(f"line {statement.lineno}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - reported like any import failure
        if isinstance(exc, KeyboardInterrupt):
            raise
        malformed.append(f"importing {file} raised {type(exc).__name__}: {exc}")
    finally:
        sys.path.remove(str(file.parent))
        if packaged is None:
            for added in set(sys.modules) - before:
                if _within(sys.modules[added], file.parent.resolve()):
                    del sys.modules[added]
    if malformed:
        malformed[-1] += "; the file's other records are checked"
    return module, malformed or [str(first)]


def _run(node: ast.stmt, namespace: dict, file: Path) -> None:
    exec(compile(ast.Module([node], type_ignores=[]), str(file), "exec"), namespace)  # noqa: S102


def _run_elements(statement: ast.stmt, namespace: dict, file: Path,
                  malformed: list[str]) -> bool:
    """``NAME = [record, record, ...]``: bind NAME to the elements that can be built, noting
    the others; False for any other statement."""
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(statement.value, ast.List | ast.Tuple)):
        return False
    built = []
    for element in statement.value.elts:
        try:
            built.append(eval(compile(ast.Expression(element), str(file), "eval"),  # noqa: S307
                              namespace))
        except DerivationError as exc:
            malformed.append(f"line {element.lineno}: {exc}")
    namespace[statement.targets[0].id] = built
    return True


def _doc_for(file: Path, root: Path) -> str:
    """The Markdown next to a record file: ``<stem>.md``, else that of the stem's first word
    (``lenet5_layers.py`` -> ``lenet5.md``), as a path relative to ``root`` where possible."""
    stems = (file.stem, file.stem.lstrip("_").split("_")[0])
    doc = next((file.parent / f"{s}.md" for s in stems if (file.parent / f"{s}.md").exists()),
               None)
    if doc is None:
        return ""
    try:
        return str(doc.resolve().relative_to(root))
    except ValueError:
        return str(doc.resolve())


def discover_path(path: Path, root: Path | None = None, sources: Mapping[str, str] | None = None
                  ) -> tuple[list[Derivation], list[Broken]]:
    """(records, broken files) of one folder or file; record names must be unique in it. With
    ``sources`` (absolute path -> text), the files are loaded from those texts (see
    :func:`from_text`)."""
    path = Path(path)
    root = (root or Path.cwd()).resolve()
    if not path.exists():
        return [], [Broken(str(path), f"{path} does not exist; give a folder or a .py file")]
    records: dict[str, Derivation] = {}
    seen: set[int] = set()
    broken = []
    for file in python_files(path):
        try:
            with from_text(sources):
                module = load_module(file, sources)
        except DerivationError as exc:
            with from_text(sources):
                module, malformed = load_tolerant(file, exc, sources)
            broken += [Broken(str(file), m) for m in malformed]
            if module is None:
                continue
        except BaseException as exc:  # noqa: BLE001 - report, keep discovering
            if not contain.from_code(exc):
                raise
            broken.append(Broken(str(file), f"importing {file} raised {type(exc).__name__}: "
                                            f"{exc}{_line_of(exc, file)}"))
            continue
        doc = _doc_for(file, root)
        for record in _records_in(module):
            if id(record) in seen:
                continue
            seen.add(id(record))
            if record.name in records:
                broken.append(Broken(str(file), f"two records are named {record.name!r}; "
                                                "rename one"))
                continue
            if not record.doc and doc:
                record = replace(record, doc=doc)
            if not record.origin:
                record = replace(record, origin=str(file))
            records[record.name] = record
    return list(records.values()), broken


def discover_sources(paths: Iterable[str | Path] | None = None
                     ) -> list[tuple[str, list[Derivation], list[Broken]]]:
    """(path, records, broken) per path (default: the configured ``[tool.handgrad] paths``).
    Names are unique within a path; several paths (one folder per student) may reuse them."""
    cfg = config.load()
    chosen = [str(p) for p in paths] if paths is not None else [str(p) for p in cfg.paths]
    out = [("pyproject.toml", [], [Broken("pyproject.toml", p) for p in cfg.problems])] \
        if cfg.problems else []
    for path in chosen:
        out.append((path, *discover_path(Path(path), cfg.root)))
    return out


def discover(paths: Iterable[str | Path] | None = None) -> tuple[list[Derivation], list[Broken]]:
    """(records, broken) over ``paths`` (default: the configured ``[tool.handgrad] paths``); a
    broken file never hides the others."""
    sources = discover_sources(paths)
    return ([r for _, rs, _ in sources for r in rs], [b for _, _, bs in sources for b in bs])


def derivations(paths: Iterable[str | Path] | None = None) -> list[Derivation]:
    """Every discovered derivation record, in discovery order."""
    return discover(paths)[0]


def select(records, names: list[str]):
    """The (path, record) pairs whose name is one of ``names`` or starts with one."""
    if not names:
        return records, []
    chosen = [(p, r) for p, r in records
              if any(r.name == n or r.name.startswith(n) for n in names)]
    unknown = [n for n in names
               if not any(r.name == n or r.name.startswith(n) for _, r in records)]
    return chosen, unknown


def find(name: str, paths: Iterable[str | Path] | None = None) -> Derivation:
    found = derivations(paths)
    records = {r.name: r for r in found}
    twice = sorted({r.origin for r in found if r.name == name})
    if len(twice) > 1:
        raise DerivationError(f"{name!r} is defined in {twice}; give the one path to check")
    if name not in records:
        close = sorted(n for n in records if name.split("-")[0] in n)[:8]
        raise DerivationError(f"no derivation named {name!r}" +
                              (f"; did you mean one of {close}?" if close else
                               f"; known: {sorted(records)[:12]}"))
    return records[name]
