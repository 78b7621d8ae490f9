"""The grader's channel to one submission: its process, and the requests to it. The
proxies that make its modules look local are in :mod:`handgrad.grade.proxies`.

``Channel`` starts the submission's process (``python -I sandbox.py``, a new session, in a
temporary working directory, with its memory and output capped), inside bubblewrap
(:mod:`handgrad.grade.bubblewrap`) unless told it is uncontained, and carries requests to it,
one answer per request, in turn (attribute writes are pipelined: their answers are read with
the next request's).

What comes back is unpickled with an allow-list (arrays, dtypes, NumPy scalars, builtin data):
anything else (a crafted pickle that would run code here) is ``tampered``. A process that dies,
overruns its time, its memory or its output is an ``incident`` of that kind; the request that
met it raises :class:`SubmissionGoneError`, and the grader reports the record as that incident.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from handgrad.grade import bubblewrap
from handgrad.grade.sandbox import OUTPUT_CAP

SANDBOX = Path(__file__).with_name("sandbox.py")
# The largest answer read from a submission: far above any array a record's case makes, far
# below what would hurt the grader.
MAX_ANSWER = 256 * 1024 * 1024
# Importing a submission's module may import torch (seconds on a busy machine): the import has
# this budget, or the per-call limit if that is larger.
IMPORT_TIMEOUT = 60.0

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "complex"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "slice"), ("builtins", "bytearray"),
}


class TamperedError(Exception):
    """An answer that is not data, or not an answer to the request."""


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "numpy.dtypes" or (module in ("numpy", "numpy._core.multiarray")
                                        and name.endswith("DType")):
            return super().find_class(module, name)
        raise TamperedError(f"the submission answered with a {module}.{name} object, which is not "
                       "data")


def load_data(data: bytes):
    try:
        return _DataOnly(io.BytesIO(data)).load()
    except TamperedError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed bytes are tampering too
        raise TamperedError(f"the submission answered with malformed data ({type(exc).__name__})"
                       ) from None


class SubmissionGoneError(Exception):
    """The submission's process was stopped (see ``Channel.incident``)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0  # seconds per request (one call of the submission's code)
    memory_mb: int = 2048
    output_kb: int = 1024
    budget: float | None = None  # seconds of the submission's code in all (None: no cap)


@dataclass
class Incident:
    kind: str  # "crash", "timeout", "memory", "output", "tampered"
    message: str


class Channel:
    """One process of one submission, and the requests to it."""

    def __init__(self, folder: Path, workdir: Path, limits: Limits, contained: bool = True,
                 hidden: tuple[str, ...] = ()):
        self.folder, self.workdir, self.limits = folder, workdir, limits
        self.contained, self.hidden = contained, hidden
        self.output = workdir.parent / f"{workdir.name}.out"
        self.output.write_bytes(b"")
        self.incident: Incident | None = None
        self.incidents: list[Incident] = []  # every incident so far, in order
        self.number = 0
        self.pending: list[int] = []  # requests sent whose answers are not read yet
        self.methods: set[tuple[int, str]] = set()  # (type id, name) known to be methods
        self.generation = 0
        self.imported: set[str] = set()
        self.used = 0.0  # seconds spent waiting on the submission's code, every process

        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        env = {"PATH": os.defpath, "HOME": str(self.workdir), "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        memory = self.limits.memory_mb * 2 ** 20
        jail, options = [], -1
        if self.contained:
            jail, options = bubblewrap.through_fd(
                bubblewrap.command(self.workdir, self.hidden, memory))
        passed = (theirs.fileno(),) + ((options,) if options >= 0 else ())
        # stdout and stderr go to the output file, opened here: the file itself stays outside
        # the sandbox, and RLIMIT_FSIZE caps what the submission writes to it
        with open(self.output, "ab") as sink:
            self.process = subprocess.Popen(
                [*jail, sys.executable, "-I", str(SANDBOX), str(theirs.fileno()),
                 str(self.folder), "-", str(memory), str(self.limits.output_kb * 1024)],
                cwd=self.workdir, env=env, pass_fds=passed,
                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True)
        theirs.close()
        if options >= 0:
            os.close(options)
        self.conn = Connection(ours.detach())
        self.generation += 1
        self.incident = None
        self.pending, self.methods = [], set()
        try:
            self._receive(0, timeout=max(self.limits.timeout, IMPORT_TIMEOUT))
        except SubmissionGoneError:  # the incident says why; the records report it
            return
        for name in sorted(self.imported):  # as the process before this one had them
            try:
                self.import_module(name)
            except Exception:  # noqa: BLE001 - reported where the module is used
                break

    def import_module(self, name: str) -> None:
        """Import a module of the submission there (with the import budget)."""
        self.imported.add(name)
        self.request("import", name, timeout=max(self.limits.timeout, IMPORT_TIMEOUT))

    @property
    def spent(self) -> bool:
        """True when the submission's code has used its whole budget of time."""
        return self.limits.budget is not None and self.used >= self.limits.budget

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.incident is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        with contextlib.suppress(OSError):
            self.conn.close()

    def printed(self, start: int = 0, cap: int = 64 * 1024) -> str:
        """What the submission wrote to stdout and stderr from byte ``start`` on."""
        try:
            with open(self.output, "rb") as f:
                f.seek(start)
                data = f.read(cap + 1)
        except OSError:
            return ""
        text = data[:cap].decode(errors="replace")
        return text + ("\n[... more output not kept]" if len(data) > cap else "")

    def printed_size(self) -> int:
        try:
            return self.output.stat().st_size
        except OSError:
            return 0

    def _gone(self, kind: str, message: str) -> SubmissionGoneError:
        self.incident = Incident(kind, message)
        self.incidents.append(self.incident)
        self.stop()
        return SubmissionGoneError(message)

    def _death(self) -> SubmissionGoneError:
        code = self.process.wait(10)
        if self.contained and bubblewrap.exit_signal(code) is not None:
            code = -bubblewrap.exit_signal(code)
        if code == -signal.SIGXFSZ:
            return self._gone("output", f"the submission wrote more than "
                                        f"{self.limits.output_kb} KiB of output (the cap)")
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ \
                else str(-code)
            return self._gone("crash", f"the submission's process was killed by signal {name}")
        return self._gone("crash", f"the submission's process ended with exit status {code} "
                                   "(os._exit or a fatal error)")

    def _receive(self, number: int, timeout: float | None = None):
        timeout = self.limits.timeout if timeout is None else timeout
        began = time.monotonic()
        try:
            return self._receive_by(number, timeout, began)
        finally:
            self.used += time.monotonic() - began

    def _receive_by(self, number: int, timeout: float, began: float):
        budget = self.limits.budget
        left_of_budget = math.inf if budget is None else budget - self.used
        deadline = began + min(timeout, left_of_budget)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and left_of_budget < timeout:
                raise self._gone("timeout", f"the submission's code used up its budget of "
                                            f"{budget:g} s in all")
            if left <= 0:
                raise self._gone("timeout", f"the submission's code did not return within "
                                            f"{timeout:g} s (an endless loop?)")
            if self.conn.poll(min(left, 0.5)):
                try:
                    data = self.conn.recv_bytes(MAX_ANSWER)
                except (EOFError, OSError):
                    raise self._death() from None
                break
            if self.process.poll() is not None:
                raise self._death()
        try:
            reply = load_data(data)
            if not (isinstance(reply, tuple) and len(reply) >= 3 and reply[0] == number):
                raise TamperedError("the submission's process answered out of turn")
        except TamperedError as exc:
            raise self._gone("tampered", str(exc)) from None
        if reply[1] == "ok":
            return reply[2]
        _, _, type_name, message, trace = reply[:5]
        if type_name == OUTPUT_CAP:
            raise self._gone("output", f"the submission wrote more than "
                                       f"{self.limits.output_kb} KiB of output (the cap)")
        if type_name == "MemoryError":
            raise self._gone("memory", f"the submission ran out of memory (cap "
                                       f"{self.limits.memory_mb} MiB): {message}")
        raise remote_exception(type_name, message, trace)

    def _send(self, verb: str, args: tuple) -> int:
        if not self.alive:
            raise SubmissionGoneError(self.incident.message if self.incident else "not running")
        self.number += 1
        try:
            self.conn.send_bytes(pickle.dumps((self.number, verb, *args), protocol=5))
        except (OSError, ValueError):
            raise self._death() from None
        return self.number

    def post(self, verb: str, *args) -> None:
        """Send a request whose answer is read with the next request's (an attribute write):
        what it raises is raised there."""
        self.pending.append(self._send(verb, args))

    def request(self, verb: str, *args, timeout: float | None = None):
        number = self._send(verb, args)
        raised = None
        for earlier in self.pending:
            try:
                self._receive(earlier)
            except SubmissionGoneError:
                self.pending.clear()
                raise
            except Exception as exc:  # noqa: BLE001 - read every answer, then raise
                raised = raised or exc
        self.pending.clear()
        answer = self._receive(number, timeout)
        if raised is not None:
            raise raised
        return answer


class RemoteError(Exception):
    """An exception of the submission's code whose type is not a builtin."""


def remote_exception(type_name: str, message: str, trace: str) -> Exception:
    """The submission's exception as one of the grader's: the builtin type of that name (so
    that a NotImplementedError still reads as a TODO), else a RemoteError naming the type."""
    kind = getattr(builtins, type_name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and kind is not MemoryError:
        try:
            exc = kind(message)
        except Exception:  # noqa: BLE001 - an exception type with another constructor
            exc = RemoteError(f"{type_name}: {message}")
    else:
        exc = RemoteError(f"{type_name}: {message}")
    exc.remote_traceback = trace
    return exc
