"""Checking many records, in worker processes: ``handgrad check -j N``.

The work is cut into tasks, one per (record, case), then one per rejected record to shrink its
failing case. Workers are started fresh (``spawn``) and discover the same records from the same
paths, so a task names a record by (path, name) and carries only its case. Results are put back
in the order of a serial run, so ``-j N`` reports exactly what ``-j 1`` does.

A task that runs past ``timeout`` seconds (an infinite loop in someone's code) has its worker
killed and replaced; the case gets an ``ERROR [timeout]`` row and the others go on. A worker
that dies (a crash in native code, ``os._exit``) is seen at once (its process sentinel) and its
case gets an ``ERROR [crash]`` row with the exit status or signal.

What the code under test prints never reaches the terminal: a worker's stdout and stderr go to
a file of its own, the part written during a task travels back with the task's outcome, and
in this process (``-j 1``) ``print`` is captured around each task. It is kept with the record's
report (:func:`handgrad.contain.output_of`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait

from handgrad import contain
from handgrad.cases import Case
from handgrad.check import CHECKS, assemble, cases_for, check_case
from handgrad.discovery import discover_path
from handgrad.localise import smallest_failing
from handgrad.record import Derivation
from handgrad.report import Report, Result


def jobs_from(text: str) -> int:
    """``"auto"`` (every core) or a positive integer."""
    if text == "auto":
        return max(len(os.sched_getaffinity(0)), 1)
    value = int(text)
    if value < 1:
        raise ValueError("-j wants a positive integer or 'auto'")
    return value


@dataclass(frozen=True)
class Options:
    seed: int = 0
    cases: int = 4
    dims: dict | None = None
    data_seed: int | None = None
    checks: tuple[str, ...] = CHECKS
    shrink: bool = True


@dataclass(frozen=True)
class Task:
    number: int
    kind: str  # "case" or "shrink"
    source: str  # the path the record was discovered from
    name: str
    payload: object  # the Case, or the Report to shrink


def _run(task: Task, record: Derivation, options: Options):
    if task.kind == "case":
        return check_case(record, task.payload, options.checks)
    return smallest_failing(record, task.payload, check_case)


def _serve(conn, sources: Sequence[str], options: Options, output: str) -> None:
    """A worker: discover the records of ``sources``, then run the tasks it is sent. Its
    stdout and stderr (file descriptors 1 and 2: C code and tracebacks too) go to ``output``;
    the part a task wrote is sent back with its outcome."""
    import torch

    sink = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    # A Ctrl-C on the terminal reaches the whole process group; the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    torch.set_num_threads(1)  # one process per core: threads inside would compete
    records = {}
    for source in sources:
        found, _ = discover_path(source)
        records.update({(source, r.name): r for r in found})
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        start = os.lseek(sink, 0, os.SEEK_END)
        try:
            outcome = _run(task, records[(task.source, task.name)], options)
        except BaseException:  # noqa: BLE001 - the parent turns it into a result
            outcome = traceback.format_exc()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        conn.send((task.number, outcome, _written_since(output, start)))


def _written_since(path: str, start: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(contain.OUTPUT_CAP + 1)
    text = data[:contain.OUTPUT_CAP].decode(errors="replace")
    return text + ("\n[... more output not kept]" if len(data) > contain.OUTPUT_CAP else "")


def death(exitcode: int | None) -> str:
    """How a process ended, in words: ``exit status 3`` or ``signal SIGSEGV``."""
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"


class _Worker:
    def __init__(self, ctx, sources: Sequence[str], options: Options, output: str):
        self.conn, child = ctx.Pipe()
        self.output = output
        self.process = ctx.Process(target=_serve, args=(child, list(sources), options, output),
                                   daemon=True)
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.started = 0.0
        self.ready = False

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class Runner:
    """Runs tasks on ``jobs`` worker processes, or in this process when ``jobs`` is 1 and no
    timeout is asked for (a timeout needs a process to kill)."""

    def __init__(self, sources: Sequence[str], options: Options, jobs: int = 1,
                 timeout: float | None = None):
        self.sources, self.options, self.jobs, self.timeout = sources, options, jobs, timeout
        self.local = jobs == 1 and timeout is None
        self.records: dict[tuple[str, str], Derivation] = {}
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.replaced = 0
        self.scratch: tempfile.TemporaryDirectory | None = None

    def _worker(self) -> _Worker:
        output = os.path.join(self.scratch.name, f"worker-{self.replaced}-{len(self.workers)}")
        return _Worker(self.ctx, self.sources, self.options, output)

    def __enter__(self) -> Runner:
        if not self.local:
            self.scratch = tempfile.TemporaryDirectory(prefix="handgrad-workers-")
            for _ in range(self.jobs):
                self.workers.append(self._worker())
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                w.conn.send(None)
            w.stop()
        if self.scratch is not None:
            self.scratch.cleanup()

    def run(self, tasks: list[Task], record_of: Callable[[Task], Derivation],
            done: Callable[[Task, object], None]) -> None:
        """Run every task; ``done(task, outcome, printed)`` is called as each finishes, with
        the outcome or an error text, and what the code under test printed."""
        if self.local:
            for task in tasks:
                with contain.captured() as printed:
                    try:
                        outcome = _run(task, record_of(task), self.options)
                    except BaseException as exc:  # noqa: BLE001
                        if not contain.from_code(exc):
                            raise
                        outcome = traceback.format_exc()
                done(task, outcome, printed.getvalue())
            return
        todo = list(reversed(tasks))
        by_number = {t.number: t for t in tasks}
        while todo or any(w.task for w in self.workers):
            for w in self.workers:
                if w.ready and w.task is None and todo:
                    w.task, w.started = todo.pop(), time.monotonic()
                    w.conn.send(w.task)
            waiting = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
            deadline = min((w.started + self.timeout for w in self.workers if w.task),
                           default=None) if self.timeout else None
            pause = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            for ready in wait(waiting, timeout=pause):
                w = next((w for w in self.workers if ready in (w.conn, w.process.sentinel)),
                         None)
                if w is None:  # replaced earlier in this round
                    continue
                try:
                    message = w.conn.recv() if w.conn.poll() else None
                except (EOFError, OSError):
                    message = None
                if message is None:
                    if not w.process.is_alive():
                        self._died(w, done)
                    continue
                if message == "ready":
                    w.ready = True
                    continue
                number, outcome, printed = message
                w.task = None
                done(by_number[number], outcome, printed)
            if self.timeout:
                now = time.monotonic()
                for w in list(self.workers):
                    if w.task and now - w.started > self.timeout:
                        self._replace(w, done, f"the case did not finish within {self.timeout:g}"
                                               " s (an infinite loop?); the other cases go on")

    def _died(self, worker: _Worker, done) -> None:
        worker.process.join(5)
        how = death(worker.process.exitcode)
        last = [line for line in _written_since(worker.output, 0).splitlines() if line.strip()]
        said = f"; its last words: {last[-1].strip()[:300]}" if last else ""
        self._replace(worker, done, f"CRASH:the worker process died ({how}) while checking "
                                    f"this case, in native code or by os._exit{said}; the "
                                    "other cases go on")

    def _replace(self, worker: _Worker, done, why: str) -> None:
        task = worker.task
        worker.stop()
        self.replaced += 1
        if task is None and self.replaced > 3 * self.jobs:
            raise RuntimeError("worker processes keep dying before they take a task; run with "
                               "-j 1 to see why")
        self.workers[self.workers.index(worker)] = self._worker()
        if task is not None:
            printed = _written_since(worker.output, 0) if os.path.exists(worker.output) else ""
            done(task, why if why.startswith("CRASH:") else f"TIMEOUT:{why}", printed)


def check_many(records: Sequence[tuple[str, Derivation]], options: Options, jobs: int = 1,
               timeout: float | None = None,
               on_report: Callable[[int, Report], None] | None = None) -> list[Report]:
    """Reports for ``records`` ((source path, record) pairs), in their order, whatever ``jobs``.

    ``on_report(index, report)`` is called as each record's report is complete (for progress).
    """
    plans: list[list[Case]] = []
    for _, record in records:
        try:
            plans.append(cases_for(record, options.seed, options.cases, dims=options.dims,
                                   data_seed=options.data_seed))
        except Exception:  # noqa: BLE001 - check() reports it
            plans.append([])
    slots: dict[int, list] = {i: [None] * len(plan) for i, plan in enumerate(plans)}
    printed: dict[int, list[str]] = {i: [] for i in range(len(records))}
    reports: list[Report | None] = [None] * len(records)
    tasks, owner = [], {}
    for i, ((source, record), plan) in enumerate(zip(records, plans)):
        for j, case in enumerate(plan):
            owner[len(tasks)] = (i, j)
            tasks.append(Task(len(tasks), "case", source, record.name, case))
    sources = sorted({source for source, _ in records})

    def finish(i: int) -> None:
        _, record = records[i]
        if not plans[i]:
            from handgrad.check import check

            reports[i] = check(record, options.seed, options.cases, dims=options.dims,
                               data_seed=options.data_seed, checks=options.checks, shrink=False)
        else:
            reports[i] = assemble(record, [r for part in slots[i] for r in part])
        contain.remember_output(reports[i], "".join(printed[i]))
        if on_report and not (options.shrink and reports[i].failures and reports[i].rejected):
            on_report(i, reports[i])

    def case_done(task: Task, outcome, output: str = "") -> None:
        i, j = owner[task.number]
        printed[i].append(output)
        if isinstance(outcome, str):
            _, record = records[i]
            case = plans[i][j]
            kind = next((k.lower() for k in ("TIMEOUT", "CRASH") if outcome.startswith(k + ":")),
                        "exception")
            outcome = [Result(record.name, case.describe(), case.data_seed, "float64",
                              "contract", "(case)", "error", kind=kind,
                              message=outcome.split(":", 1)[1] if kind != "exception" else
                              f"checking raised: {outcome.strip().splitlines()[-1]}")]
        slots[i][j] = outcome
        if all(part is not None for part in slots[i]):
            finish(i)

    with Runner(sources, options, jobs, timeout) as runner:
        runner.run(tasks, lambda t: records[owner[t.number][0]][1], case_done)
        for i, plan in enumerate(plans):
            if not plan:
                finish(i)
        if options.shrink:
            shrinks = [Task(i, "shrink", records[i][0], records[i][1].name, reports[i])
                       for i in range(len(records))
                       if reports[i].failures and reports[i].rejected]

            def shrink_done(task: Task, outcome, output: str = "") -> None:
                if isinstance(outcome, list):
                    reports[task.number].diagnoses += outcome
                if on_report:
                    on_report(task.number, reports[task.number])

            runner.run(shrinks, lambda t: records[t.number][1], shrink_done)
    return reports
