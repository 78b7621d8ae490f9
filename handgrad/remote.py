"""The grader's side of a submission: its modules as proxies whose functions run in the
submission's own process (:mod:`handgrad.sandbox`), so that the grader never imports, runs or
unpickles anything of the submission but data.

``Channel`` starts the submission's process (``python -I sandbox.py``, a new session, in a
temporary working directory, with its memory and output capped) and carries requests to it.
``RemoteModule`` is what ``import layers`` gives in the grader: attribute access, calls,
``vars``, ``inspect.signature`` and attribute writes are answered by the submission's process.
Arrays the submission writes into (its arguments) are written back into the grader's copies,
so the contract checks see what they would see in one process.

What comes back is unpickled with an allow-list (arrays, dtypes, NumPy scalars, builtin data):
anything else (a crafted pickle that would run code here) is ``tampered``. A process that dies,
overruns its time, its memory or its output is an ``incident`` of that kind; the request that
met it raises :class:`SubmissionGoneError`, and the grader reports the record as that incident.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.abc
import importlib.machinery
import inspect
import io
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from handgrad.sandbox import DATA, HANDLE, METHOD, OUTPUT_CAP, PATH

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


@dataclass
class Incident:
    kind: str  # "crash", "timeout", "memory", "output", "tampered"
    message: str


class Channel:
    """One process of one submission, and the requests to it."""

    def __init__(self, folder: Path, workdir: Path, limits: Limits):
        self.folder, self.workdir, self.limits = folder, workdir, limits
        self.output = workdir.parent / f"{workdir.name}.out"
        self.output.write_bytes(b"")
        self.incident: Incident | None = None
        self.incidents: list[Incident] = []  # every incident so far, in order
        self.number = 0
        self.pending: list[int] = []  # requests sent whose answers are not read yet
        self.methods: set[tuple[int, str]] = set()  # (type id, name) known to be methods
        self.generation = 0
        self.imported: set[str] = set()
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        env = {"PATH": os.defpath, "HOME": str(self.workdir), "LANG": "C.UTF-8",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(SANDBOX), str(theirs.fileno()), str(self.folder),
             str(self.output), str(self.limits.memory_mb * 2 ** 20),
             str(self.limits.output_kb * 1024)],
            cwd=self.workdir, env=env, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
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
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
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


def _to_wire(value, depth: int = 0):
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_ref")
    if depth < 32 and type(value) in (tuple, list):
        return type(value)(_to_wire(v, depth + 1) for v in value)
    if depth < 32 and isinstance(value, dict):
        return {k: _to_wire(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (*DATA, np.ndarray, np.generic)):
        return value
    raise TypeError(f"cannot pass a {type(value).__name__} to the submission's code (only "
                    "arrays, numbers, strings, containers of those, and its own objects)")


def _write_back(mine, theirs, channel: Channel) -> None:
    """Make the grader's argument ``mine`` hold what the submission's call left in it."""
    if isinstance(mine, np.ndarray) and isinstance(theirs, np.ndarray):
        if mine.shape == theirs.shape and mine.flags.writeable:
            np.copyto(mine, theirs, casting="unsafe")
    elif isinstance(mine, list) and isinstance(theirs, list):
        if len(mine) == len(theirs):
            for i, (a, b) in enumerate(zip(mine, theirs)):
                if isinstance(a, np.ndarray | list | dict):
                    _write_back(a, b, channel)
                else:
                    mine[i] = _from_wire(b, channel)
        else:
            mine[:] = [_from_wire(b, channel) for b in theirs]
    elif isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs):
        for a, b in zip(mine, theirs):
            _write_back(a, b, channel)
    elif isinstance(mine, dict) and isinstance(theirs, dict):
        for k in list(mine):
            if k not in theirs:
                del mine[k]
        for k, b in theirs.items():
            if k in mine and isinstance(mine[k], np.ndarray | list | dict):
                _write_back(mine[k], b, channel)
            else:
                mine[k] = _from_wire(b, channel)


def _from_wire(value, channel: Channel, path: tuple | None = None, depth: int = 0):
    if type(value) is tuple and len(value) == 5 and isinstance(value[0], str) \
            and value[0] == HANDLE:
        ref = path or (HANDLE, value[1])
        return (RemoteCallable if value[2] in ("class", "callable") else RemoteObject)(
            channel, ref, value[3], value[4])
    if depth < 32 and type(value) in (tuple, list):
        return type(value)(_from_wire(v, channel, None, depth + 1) for v in value)
    if depth < 32 and type(value) is dict:
        return {k: _from_wire(v, channel, None, depth + 1) for k, v in value.items()}
    return value


class Remote:
    """An object of the submission, held by its process."""

    __slots__ = ("_channel", "_ref", "_type", "_type_id", "_generation")

    def __init__(self, channel: Channel, ref: tuple, type_name: str, type_id: int = 0):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_type_id", type_id)
        object.__setattr__(self, "_generation", channel.generation)

    def _ask(self, verb: str, *args, wait: bool = True):
        channel = object.__getattribute__(self, "_channel")
        ref = object.__getattribute__(self, "_ref")
        if ref[0] == HANDLE and object.__getattribute__(self, "_generation") != \
                channel.generation:
            raise SubmissionGoneError("this object belonged to a process of the submission "
                                      "that was stopped")
        if not wait:
            return channel.post(verb, ref, *args)
        return channel.request(verb, ref, *args)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        channel = object.__getattribute__(self, "_channel")
        ref = object.__getattribute__(self, "_ref")
        # A method of the object's class is called by name, without asking for it first: one
        # round trip per call instead of two (the method is looked up there at each call).
        known = (object.__getattribute__(self, "_type_id"), name)
        if ref[0] == HANDLE and known in channel.methods:
            return RemoteMethod(self, name)
        value = self._ask("get", name)
        if type(value) is tuple and value == (METHOD,):
            channel.methods.add(known)
            return RemoteMethod(self, name)
        path = (*ref, name) if ref[0] == PATH else None
        return _from_wire(value, channel, path)

    def __setattr__(self, name: str, value) -> None:
        self._ask("set", name, _to_wire(value), wait=False)

    @property
    def __dict__(self) -> dict:
        return _from_wire(self._ask("vars"), object.__getattribute__(self, "_channel"))

    def __deepcopy__(self, memo):
        return _from_wire(self._ask("deepcopy"), object.__getattribute__(self, "_channel"))

    def __repr__(self) -> str:
        return f"<submission's {object.__getattribute__(self, '_type')}>"


class RemoteObject(Remote):
    __slots__ = ()


class RemoteCallable(Remote):
    """A function, class or bound method of the submission."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        channel = object.__getattribute__(self, "_channel")
        result, written = self._ask("call", _to_wire(args), _to_wire(kwargs))
        _write_back_arguments(args, kwargs, written, channel)
        return _from_wire(result, channel)

    @property
    def __signature__(self) -> inspect.Signature:
        described = self._ask("signature")
        if described is None:
            raise ValueError("no signature")
        return inspect.Signature([
            inspect.Parameter(name, inspect._ParameterKind(kind),
                              default=default if has_default else inspect.Parameter.empty)
            for name, kind, default, has_default in described])

    @property
    def __name__(self) -> str:
        ref = object.__getattribute__(self, "_ref")
        return ref[-1] if ref[0] == PATH else object.__getattribute__(self, "_type")


class RemoteMethod:
    """``obj.name`` where ``name`` is a method of the submission's object ``obj``."""

    __slots__ = ("owner", "name")

    def __init__(self, owner: Remote, name: str):
        self.owner, self.name = owner, name

    def __call__(self, *args, **kwargs):
        owner = self.owner
        channel = object.__getattribute__(owner, "_channel")
        result, written = owner._ask("callattr", self.name, _to_wire(args), _to_wire(kwargs))
        _write_back_arguments(args, kwargs, written, channel)
        return _from_wire(result, channel)


def _write_back_arguments(args, kwargs, written, channel: Channel) -> None:
    written_args, written_kwargs = written
    for i, value in written_args.items():
        _write_back(args[i], value, channel)
    for k, value in written_kwargs.items():
        _write_back(kwargs[k], value, channel)


class RemoteModule(types.ModuleType):
    """``import NAME`` in the grader, where NAME is a module of the submission."""

    def __init__(self, name: str, channel: Channel):
        super().__init__(name)
        self.__channel = channel

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        channel = self.__channel
        try:
            if self.__name__ not in channel.imported:
                channel.import_module(self.__name__)
            value = channel.request("get", (PATH, self.__name__), attr)
        except Exception as exc:  # noqa: BLE001 - the records that use it report it
            return Missing(channel, f"{self.__name__}.{attr}", exc)
        return _from_wire(value, channel, (PATH, self.__name__, attr))


class Missing:
    """What a record file got for a name the submission does not provide (or whose module did
    not import, or crashed on import): the record file still loads, and each record that uses
    it reports why, so that the list of records, and the points at stake, are the same for
    every submission."""

    def __init__(self, channel: Channel, name: str, error: Exception):
        self._channel, self._name, self._error = channel, name, error
        self._incident = channel.incident if isinstance(error, SubmissionGoneError) else None

    def _raise(self):
        if self._incident is not None:
            self._channel.incidents.append(self._incident)
            raise SubmissionGoneError(self._incident.message)
        why = self._error if isinstance(self._error, RemoteError) else \
            f"{type(self._error).__name__}: {self._error}"
        raise RemoteError(f"{self._name} is not available: {why}")

    def __call__(self, *args, **kwargs):
        self._raise()

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self

    @property
    def __signature__(self):
        raise ValueError(f"{self._name} is not available")


class SubmissionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path`` while a submission is graded: a top-level module that nothing
    else provides and that the submission's folder holds is the submission's, as a proxy."""

    def __init__(self, channel: Channel, names: set[str]):
        self.channel, self.names = channel, names

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname or fullname not in self.names:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return RemoteModule(spec.name, self.channel)

    def exec_module(self, module) -> None:
        """Nothing here: the module is imported there on first use of one of its names."""


def module_names(folder: Path) -> set[str]:
    """The top-level modules a folder provides: ``name.py`` files and packages."""
    names = {p.stem for p in folder.glob("*.py") if p.stem.isidentifier()}
    names |= {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names
