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
- ``FILE[import]`` when the file does not import, with the error;
- ``NAME[bench-<kind>-<dtype>-<dims>]`` for every right record with ``bench`` dims: its hand
  code against autograd (``handgrad.bench.pairs``: backward, and jvp, hvp or Function where the
  record has them), the two sides interleaved by rounds with pytest-benchmark's fixture. Timed
  with ``--benchmark-enable`` (and ``-n 0``); otherwise each side runs once, a smoke test that
  the two agree. The GEMM roof is timed before the first and after the last of them, and the
  summary at the end (``handgrad.bench.table``) gives the ratio of medians with its spread,
  GFLOP/s, the roof fraction and the machine. Under pytest-xdist pytest-benchmark turns itself
  off, so ``--benchmark-enable`` with ``-n N`` says, loudly, that benchmarks need ``-n 0``.

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
_ROOF = pytest.StashKey[set]()
"""The dtypes whose GEMM roof this run has timed."""


def _xdist_blocks_benchmarks(config: pytest.Config) -> bool:
    """--benchmark-enable asked for, under pytest-xdist (where pytest-benchmark disables
    itself: ``-n auto`` in this repository's addopts)."""
    asked = config.getoption("benchmark_enable", False) and not config.getoption(
        "benchmark_skip", False)
    # A worker's config carries ``workerinput``; an environment variable would also be
    # inherited by a pytest that a test starts in a subprocess, which is not under xdist.
    return bool(asked and (config.getoption("dist", "no") != "no"
                           or hasattr(config, "workerinput")))


XDIST_MESSAGE = ("benchmarks DID NOT RUN: pytest-xdist is active (-n), and pytest-benchmark "
                 "turns itself off under it, so every benchmark only ran once as a smoke test. "
                 "Benchmarks need one process: add -n 0 (pytest --benchmark-enable -n 0).")


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"handgrad: {XDIST_MESSAGE}" if _xdist_blocks_benchmarks(config) else None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved benchmark runs (``--benchmark-save``, ``--benchmark-json``) record the SIMD level,
    the BLAS libraries with the kernels they chose and the thread counts, beside
    pytest-benchmark's own CPU fields."""
    from handgrad.bench import machine

    machine_info["handgrad"] = machine()


def _bench_session(config: pytest.Config):
    """handgrad's view of pytest-benchmark's session (None when the plugin is off)."""
    from handgrad.bench.runner import Bench

    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return None
    return Bench(bs.options, bs.benchmarks, bs.logger, disabled=bs.disabled)


def _time_roofs(config: pytest.Config, bench, dtypes, when: str) -> None:
    from handgrad.bench.runner import time_roof

    for dtype in dtypes:
        for library in ("numpy", "torch"):
            time_roof(bench, dtype, library, when)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus):
    """The last GEMM probes, before pytest-benchmark saves its JSON."""
    timed = session.config.stash.get(_ROOF, set())
    bench = _bench_session(session.config) if timed else None
    if bench is not None and not bench.disabled:
        _time_roofs(session.config, bench, sorted(timed), "last")
    yield


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The machine, then hand/autograd median-time ratio with its spread, GFLOP/s and roof
    fraction of every benchmark group, then the cost exponent of every scaling series; or, under
    xdist with --benchmark-enable, that nothing was timed and why."""
    if _xdist_blocks_benchmarks(config) and not hasattr(config, "workerinput"):
        terminalreporter.section("handgrad benchmarks", red=True, bold=True)
        terminalreporter.write_line(XDIST_MESSAGE, red=True, bold=True)
        return
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", []) or []
    if not benchmarks:
        return
    from handgrad.bench import machine, summary
    from handgrad.bench.runner import load_lines

    info = machine()
    lines = summary(benchmarks, info)
    if lines:
        terminalreporter.section("hand / autograd (median times, same run)")
        for line in lines + load_lines(benchmarks, info):
            terminalreporter.write_line(line)


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
        benched = [r for r in records if r.expect != "reject" and r.bench]
        if benched:
            from handgrad.bench.pairs import dims_text, plan

            for record, dims, dtype, kind in plan(benched):
                yield BenchItem.from_parent(
                    self, name=f"{record.name}[bench-{kind}-{dtype}-{dims_text(dims)}]",
                    record=record, line=_line_of(record.name, lines), bench=(dims, dtype, kind))


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
                 equation=None, bench=None, **kwargs):
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
        self.bench = bench

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


class BenchItem(RecordItem):
    """A record's hand code against autograd, timed by pytest-benchmark (see the module
    docstring); ``self.bench`` is (dims, dtype, kind)."""

    # pytest-benchmark reads this: --benchmark-only keeps the item, --benchmark-skip skips it.
    fixturenames = ("benchmark",)

    def runtest(self) -> None:
        from handgrad.bench.pairs import pair
        from handgrad.bench.runner import time_pair

        dims, dtype, kind = self.bench
        bench = _bench_session(self.config)
        if bench is None:  # -p no:benchmark: a smoke run
            built = pair(self.record, dims, dtype, kind)
            built.agree(built.hand(), built.autograd())
            return
        if not bench.disabled:
            timed = self.config.stash.setdefault(_ROOF, set())
            if dtype not in timed:
                _time_roofs(self.config, bench, [dtype], "first")
                timed.add(dtype)
        time_pair(bench, pair(self.record, dims, dtype, kind), self.nodeid)
