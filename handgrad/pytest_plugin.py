"""handgrad's pytest plugin (entry point ``pytest11``, name ``handgrad``).

In any repository with handgrad installed, ``pytest`` collects the records of the configured
paths (``[tool.handgrad] paths`` in ``pyproject.toml``, or ``--grad-path``) and runs, per record
file:

- ``NAME[<origin><i>]`` for every sampled case of a right record: every oracle agrees;
- ``NAME[coverage]`` for every right record: every gradient was exercised (not vacuous);
- ``NAME[rejected]`` for every record transcribing a known error: rejected, with its
  ``expect_kind`` when it has one;
- ``NAME[eq-TAG]`` for every tagged equation of a right record's page (its ``page``, else its
  ``doc``): the equation holds on every sampled case (an equation outside the page language is
  reported skipped, naming the construct);
- ``FILE[import]`` when the file does not import, with the error.

Options: ``--grad-seed`` (seed of the case sampler), ``--grad-cases`` (cases per record),
``--grad-path`` (record folder or file, repeatable). The paths are added to what a plain
``pytest`` collects, and to what ``pytest some/file.py --grad-path P`` names; ``pytest
some/file.py`` alone collects only what it names.

The engine (numpy, torch, hypothesis) is imported only when a record file is collected: the
plugin is loaded by every pytest run in the environment, most of which have no records.
Items carry a location (the line of the record's name in its file), so that pytest can report
them skipped (``--benchmark-only`` skips every test that is not a benchmark) or deselected.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from handgrad import config as handgrad_config


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handgrad")
    group.addoption("--grad-seed", type=int, default=0, help="seed of handgrad's case sampler")
    group.addoption("--grad-cases", type=int, default=4, help="cases per handgrad record")
    group.addoption("--grad-path", action="append", default=None, metavar="PATH",
                    help="folder or file of handgrad records (default: [tool.handgrad] paths)")


def _record_paths(config: pytest.Config) -> list[Path]:
    given = config.getoption("--grad-path")
    if given:
        return [Path(p).resolve() for p in given]
    return [p.resolve() for p in handgrad_config.load(config.rootpath).paths]


def pytest_configure(config: pytest.Config) -> None:
    paths = _record_paths(config)
    config.stash[_PATHS] = paths
    if config.args_source == pytest.Config.ArgsSource.ARGS and not config.getoption("--grad-path"):
        return
    for path in paths:
        covered = any(path.is_relative_to(Path(a).resolve()) for a in config.args
                      if Path(a).exists())
        if path.exists() and not covered:
            config.args.append(str(path))


_PATHS = pytest.StashKey[list]()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    paths = parent.config.stash.get(_PATHS, [])
    if file_path.suffix != ".py" or not paths:
        return None
    from handgrad.discovery import python_files

    resolved = file_path.resolve()
    if any(resolved in [f.resolve() for f in python_files(p)] for p in paths if p.exists()):
        return RecordFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def grad_seed(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--grad-seed")


@pytest.fixture
def grad_cases(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--grad-cases")


class RecordFile(pytest.File):
    """The records of one Python file."""

    def collect(self):
        from handgrad.discovery import discover_path

        records, broken = discover_path(self.path, self.config.rootpath)
        lines = self.path.read_text(errors="replace").splitlines()
        marks = _file_marks(self.path)
        for item in self._items(records, broken, lines):
            name = item.record.name if item.record is not None else None
            for mark in marks.get(None, []) + marks.get(name, []):
                item.add_marker(mark)
            yield item

    def _items(self, records, broken, lines):
        from handgrad.cases import sample_cases

        for b in broken:
            yield RecordItem.from_parent(self, name=f"{self.path.name}[import]", broken=b,
                                         line=0)
        seed = self.config.getoption("--grad-seed")
        count = self.config.getoption("--grad-cases")
        for record in records:
            line = _line_of(record.name, lines)
            if record.expect == "reject":
                yield RecordItem.from_parent(self, name=f"{record.name}[rejected]",
                                             record=record, seed=seed, count=count, line=line)
                continue
            for i, case in enumerate(sample_cases(record, seed, count)):
                yield RecordItem.from_parent(self, name=f"{record.name}[{case.origin}{i}]",
                                             record=record, case=case, line=line)
            yield RecordItem.from_parent(self, name=f"{record.name}[coverage]", record=record,
                                         seed=seed, count=count, line=line)
            for tag in _page_tags(record):
                yield RecordItem.from_parent(self, name=f"{record.name}[eq-{tag}]",
                                             record=record, seed=seed, count=count, line=line,
                                             equation=tag)


def _file_marks(path: Path) -> dict[str | None, list]:
    """The ``pytestmark`` of a record file, as in a test module: a mark or a list of marks
    applies to every item of its records (key None); a dict ``{"record-name": mark or marks}``
    to the items of the records it names (``pytestmark = {"lstm": pytest.mark.slow}``)."""
    target = path.resolve()
    module = next((m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) and Path(m.__file__).resolve() == target),
                  None)
    marks = getattr(module, "pytestmark", [])

    def listed(value) -> list:
        return list(value) if isinstance(value, list | tuple) else [value]

    if isinstance(marks, dict):
        return {name: listed(value) for name, value in marks.items()}
    return {None: listed(marks)}


def _page_tags(record) -> list[str]:
    """The tags of the equations of the record's page that it follows (none without a
    reference, which an equation is judged against, or without a page)."""
    if record.reference is None:
        return []
    from handgrad.pages import page_of

    try:
        page = page_of(record)
    except Exception:  # noqa: BLE001 - the record's own items report a page that does not load
        return []
    wanted = record.equations
    return [e.tag for e in page.equations if wanted is None or e.tag in wanted] if page else []


def _line_of(name: str, lines: list[str]) -> int:
    """The 0-based line of the first quoted occurrence of a record's name in its file (0 when
    the name is built, not written)."""
    quoted = (f'"{name}"', f"'{name}'")
    return next((i for i, text in enumerate(lines) if any(q in text for q in quoted)), 0)


_PAGE_VERDICTS: dict[tuple, list] = {}


class RecordCheckError(Exception):
    """A record that handgrad found wrong; the message is the report."""


class RecordItem(pytest.Item):
    def __init__(self, *, record=None, case=None, seed=0, count=4, broken=None, line=0,
                 equation=None, **kwargs):
        # pytest >= 9.2 keeps a structured id: "name[params]" parsed from the cache (--lf,
        # --sw) splits at the bracket, so the item's own id must be built the same way.
        base, bracket, params = kwargs["name"].partition("[")
        if bracket and hasattr(kwargs.get("parent"), "id") and "nodeid" not in kwargs:
            kwargs["nodeid"] = kwargs["parent"].id.child(base).with_params(
                params.removesuffix("]"))
        super().__init__(**kwargs)
        self.record, self.case, self.seed, self.count, self.broken = (record, case, seed,
                                                                       count, broken)
        self.line = line
        self.equation = equation

    def runtest(self) -> None:
        from handgrad.check import check, check_case
        from handgrad.localise import localise, smallest_failing
        from handgrad.report import Report

        if self.broken is not None:
            raise RecordCheckError(f"{self.broken.module}: {self.broken.message}")
        record = self.record
        if self.equation is not None:
            self._equation(record)
        elif self.case is not None:
            report = Report(record.name, doc=record.doc, results=check_case(record, self.case))
            if not report.passed:
                report.diagnoses = localise(record, report) + smallest_failing(record, report,
                                                                              check_case)
                raise RecordCheckError(report.render(only_failures=True))
        elif record.expect == "reject":
            report = check(record, seed=self.seed, cases=self.count, shrink=False)
            if not report.as_expected:
                raise RecordCheckError(
                    f"{record.name} transcribes a known error ({record.erratum}); expected a "
                    f"rejection{f' of kind {record.expect_kind!r}' if record.expect_kind else ''}"
                    f", got {report.status} {report.kind!r}:\n"
                    + report.render(only_failures=report.rejected))
        else:
            report = check(record, seed=self.seed, cases=self.count,
                           checks=("contract", "autograd"), shrink=False)
            vacuous = [r for r in report.results if r.status == "vacuous"]
            if vacuous:
                raise RecordCheckError("\n".join(f"{r.tensor}: {r.message}" for r in vacuous))

    def _equation(self, record) -> None:
        """The page's equation ``self.equation`` on every sampled case."""
        from handgrad.cases import sample_cases
        from handgrad.pages import check_page

        seen = []
        for case in sample_cases(record, self.seed, self.count):
            # One evaluation of the page per record and case serves each of its equations.
            key = (record.name, record.origin, case)
            if key not in _PAGE_VERDICTS:
                _PAGE_VERDICTS[key] = check_page(record, case)
            e = next(e for e in _PAGE_VERDICTS[key] if e.tag == self.equation)
            if e.status == "fail":
                raise RecordCheckError(
                    f"({e.tag}) {e.lhs} = ... is wrong on the page [{e.kind}] in case "
                    f"{case.describe()}, data seed {case.data_seed}: {e.message} (line "
                    f"{e.line}); reproduce: handgrad check {record.name} --dims "
                    f"{case.describe()} --data-seed {case.data_seed}")
            seen.append(e)
        if all(e.status in ("not-checkable", "skipped") for e in seen):
            pytest.skip(f"({self.equation}) not checked: {seen[0].message}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, RecordCheckError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.line, f"{self.path.name}::{self.name}"
