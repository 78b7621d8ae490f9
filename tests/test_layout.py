"""The house: the public API stays where users import it from, and imports between the engine's
rooms go one way. Records and cases at the bottom, then the oracles, then the checking, then the
views, the grader and the benchmarks, then the two front doors (the CLI and the pytest plugin).

``diagnose``, ``coverage`` and ``compare`` sit at the bottom although the checking uses them
most: they are pure functions of arrays (what kind of wrong, whether a case could catch
anything) that the oracles call on their own results.
"""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

import handgrad

PACKAGE = Path(handgrad.__file__).parent
ROOT = PACKAGE.parent

BOTTOM, ORACLES, CHECKING, VIEWS, DOORS = range(5)
LAYER_NAMES = ["records and cases", "oracles", "checking", "views, grader, benchmarks",
               "front doors"]
# Every module of the engine has a layer: a new module fails here until it is given one.
MODULES = {
    **dict.fromkeys(["errors", "shapes", "tolerances", "config", "contain", "record", "state",
                     "cases", "contract", "randomness", "compare", "report", "diagnose",
                     "coverage", "autograd", "caserun", "discovery", "mutations", "scaffold"],
                    BOTTOM),
    **dict.fromkeys(["check", "reconcile", "localise", "blame", "parallel", "watch",
                     "transcription", "binding"], CHECKING),
    "bench": VIEWS,
    **dict.fromkeys(["cli", "pytest_plugin"], DOORS),
}
SUBPACKAGES = {"adapt": BOTTOM, "pages": BOTTOM, "oracles": ORACLES, "views": VIEWS,
               "grade": VIEWS, "bench": VIEWS}


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer(name: str) -> int:
    if name == "handgrad":
        return DOORS  # the package's own namespace re-exports from every layer
    parts = name.split(".")[1:]
    if parts[0] in SUBPACKAGES and (len(parts) > 1 or parts[0] not in MODULES):
        return SUBPACKAGES[parts[0]]
    if parts[0] not in MODULES:
        raise AssertionError(f"handgrad.{parts[0]} has no layer: give it one in MODULES of "
                             f"{Path(__file__).name}")
    return MODULES[parts[0]]


def imports(name: str, *, top_level_only: bool) -> set[str]:
    """The handgrad modules ``name`` imports (function-level imports too unless told)."""
    path = ROOT / Path(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "handgrad"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != "handgrad":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if is_module(sub):
                    found.add(sub)
                elif base == "handgrad" and alias.name in handgrad._HOMES:
                    found.add(handgrad._HOMES[alias.name])
                elif base == "handgrad" and alias.name == "check":
                    found.add("handgrad.check")
                else:
                    found.add(base)
    return found - {name}


def test_public_api_is_where_users_import_it():
    from handgrad import Derivation, DerivationError, Report, Result, adapt, check, derivations

    assert callable(check) and callable(derivations)
    assert handgrad.check is check and handgrad.Derivation is Derivation
    assert sorted(handgrad.__all__) == ["Derivation", "DerivationError", "Report", "Result",
                                        "check", "derivations"]
    assert issubclass(DerivationError, Exception) and Report.__name__ == "Report"
    assert Result.__name__ == "Result"
    for name in ("pair", "layer", "loss", "function", "input", "passed_to", "bernoulli",
                 "quantized", "LR"):
        assert hasattr(adapt, name), f"handgrad.adapt.{name} is gone"
    assert callable(handgrad.adapt.pair) and callable(handgrad.adapt.function)


def test_entry_points_resolve():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, attr = project["scripts"]["handgrad"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    plugin = importlib.import_module(project["entry-points"]["pytest11"]["handgrad"])
    assert hasattr(plugin, "pytest_collect_file")


@pytest.mark.parametrize("name", module_names())
def test_imports_go_one_way(name):
    own = layer(name)
    against = sorted(dep for dep in imports(name, top_level_only=False)
                     if not name.startswith(dep + ".") and layer(dep) > own)
    assert not against, (
        f"{name} ({LAYER_NAMES[own]}) imports " +
        ", ".join(f"{dep} ({LAYER_NAMES[layer(dep)]})" for dep in against) +
        ": imports go from the front doors down to the records, never up")


def test_no_import_cycle():
    graph = {name: {dep for dep in imports(name, top_level_only=True)
                    if not name.startswith(dep + ".")} for name in module_names()}
    done, path = set(), []

    def visit(name: str) -> None:
        if name in path:
            cycle = path[path.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_rooms_say_what_they_hold():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "may import" in doc.lower(), f"{init.relative_to(ROOT)}: say what it may import"
        room = init.parent.name
        for module in init.parent.rglob("*.py"):
            assert not module.stem.startswith(room + "_"), (
                f"{module.relative_to(ROOT)} repeats its package's name as a prefix")
    for module in PACKAGE.glob("*.py"):
        assert not module.stem.startswith(tuple(f"{room}_" for room in SUBPACKAGES)), (
            f"{module.relative_to(ROOT)} belongs in its room")


def test_the_scan_sees_imports_of_every_form():
    # the one-way test is only as good as the scan: absolute, package-relative and lazy imports
    assert "handgrad.check" in imports("handgrad.views.evidence", top_level_only=False)
    assert "handgrad.grade.cli" in imports("handgrad.cli", top_level_only=False)
    assert "handgrad.grade.cli" not in imports("handgrad.cli", top_level_only=True)
    assert "handgrad.contain" in imports("handgrad.check", top_level_only=True)
    assert layer("handgrad.views.evidence") > layer("handgrad.check") > layer("handgrad.oracles.fd")
