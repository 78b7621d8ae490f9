"""Checking many records, in worker processes: ``handgrad check -j N``.

The work is cut into tasks, one per (record, case), then one per rejected record to shrink its
failing case. Workers are started fresh (``spawn``) and discover the same records from the same
paths, so a task names a record by (path, name) and carries only its case. Results are put back
in the order of a serial run, so ``-j N`` reports exactly what ``-j 1`` does.

A task that runs past ``timeout`` seconds (an infinite loop in someone's code) has its worker
killed and replaced; the case gets an ``ERROR [timeout]`` row and the others go on. A worker
that dies (a crash in native code) is reported the same way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait

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


def _serve(conn, sources: Sequence[str], options: Options) -> None:
    """A worker: discover the records of ``sources``, then run the tasks it is sent."""
    import torch

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
        try:
            conn.send((task.number, _run(task, records[(task.source, task.name)], options)))
        except Exception:  # noqa: BLE001 - the parent turns it into a result
            conn.send((task.number, traceback.format_exc()))


class _Worker:
    def __init__(self, ctx, sources: Sequence[str], options: Options):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, list(sources), options),
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

    def __enter__(self) -> Runner:
        if not self.local:
            self.workers = [_Worker(self.ctx, self.sources, self.options)
                            for _ in range(self.jobs)]
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                w.conn.send(None)
            w.stop()

    def run(self, tasks: list[Task], record_of: Callable[[Task], Derivation],
            done: Callable[[Task, object], None]) -> None:
        """Run every task; ``done(task, outcome)`` is called as each finishes, with the
        outcome or an error text."""
        if self.local:
            for task in tasks:
                try:
                    done(task, _run(task, record_of(task), self.options))
                except Exception:  # noqa: BLE001
                    done(task, traceback.format_exc())
            return
        todo = list(reversed(tasks))
        by_number = {t.number: t for t in tasks}
        while todo or any(w.task for w in self.workers):
            for w in self.workers:
                if w.ready and w.task is None and todo:
                    w.task, w.started = todo.pop(), time.monotonic()
                    w.conn.send(w.task)
            waiting = [w.conn for w in self.workers]
            deadline = min((w.started + self.timeout for w in self.workers if w.task),
                           default=None) if self.timeout else None
            pause = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            for conn in wait(waiting, timeout=pause):
                w = next(w for w in self.workers if w.conn is conn)
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self._replace(w, done, "the worker process died (a crash in native "
                                           "code?) while checking this case")
                    continue
                if message == "ready":
                    w.ready = True
                    continue
                number, outcome = message
                w.task = None
                done(by_number[number], outcome)
            if self.timeout:
                now = time.monotonic()
                for w in list(self.workers):
                    if w.task and now - w.started > self.timeout:
                        self._replace(w, done, f"the case did not finish within {self.timeout:g}"
                                               " s (an infinite loop?); the other cases go on")

    def _replace(self, worker: _Worker, done, why: str) -> None:
        task = worker.task
        worker.stop()
        self.replaced += 1
        if task is None and self.replaced > 3 * self.jobs:
            raise RuntimeError("worker processes keep dying before they take a task; run with "
                               "-j 1 to see why")
        self.workers[self.workers.index(worker)] = _Worker(self.ctx, self.sources, self.options)
        if task is not None:
            done(task, f"TIMEOUT:{why}")


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
        if on_report and not (options.shrink and reports[i].failures and reports[i].rejected):
            on_report(i, reports[i])

    def case_done(task: Task, outcome) -> None:
        i, j = owner[task.number]
        if isinstance(outcome, str):
            _, record = records[i]
            case = plans[i][j]
            timed_out = outcome.startswith("TIMEOUT:")
            outcome = [Result(record.name, case.describe(), case.data_seed, "float64",
                              "contract", "(case)", "error",
                              kind="timeout" if timed_out else "exception",
                              message=outcome.removeprefix("TIMEOUT:") if timed_out else
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

            def shrink_done(task: Task, outcome) -> None:
                if isinstance(outcome, list):
                    reports[task.number].diagnoses += outcome
                if on_report:
                    on_report(task.number, reports[task.number])

            runner.run(shrinks, lambda t: records[t.number][1], shrink_done)
    return reports
