"""Where the records live: ``[tool.handgrad]`` in the nearest ``pyproject.toml``.

    [tool.handgrad]
    paths = ["grads"]          # folders or files holding Derivation records (default: none)
    reference_dir = "reference"  # where ``handgrad new`` puts the PyTorch reference (default:
                                 # next to the record, as <stem>_reference.py)
    require_docs = true        # ``handgrad new`` also writes the Markdown derivation

Paths are relative to the folder holding the ``pyproject.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    root: Path
    paths: tuple[Path, ...] = ()
    reference_dir: Path | None = None
    require_docs: bool = False
    problems: tuple[str, ...] = field(default=())


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(start: Path | None = None) -> Config:
    """The configuration of the project around ``start`` (default: the working directory)."""
    pyproject = find_pyproject(start)
    if pyproject is None:
        return Config(root=(start or Path.cwd()).resolve())
    root = pyproject.parent
    try:
        table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("handgrad", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return Config(root=root, problems=(f"{pyproject}: cannot read it ({exc})",))
    problems = []
    paths = table.get("paths", [])
    if isinstance(paths, str):
        paths = [paths]
    if not all(isinstance(p, str) for p in paths):
        problems.append(f"{pyproject}: [tool.handgrad] paths must be a list of strings")
        paths = []
    reference_dir = table.get("reference_dir")
    return Config(root=root, paths=tuple(root / p for p in paths),
                  reference_dir=root / reference_dir if isinstance(reference_dir, str) else None,
                  require_docs=bool(table.get("require_docs", False)),
                  problems=tuple(problems))
