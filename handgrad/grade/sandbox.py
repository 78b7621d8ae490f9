"""The submission's side of ``handgrad grade``: a process that holds a student's modules and
runs their functions on request. Everything that decides a verdict stays in the grader.

It is started as a script (``python -I handgrad/grade/sandbox.py FD ...``), inside bubblewrap
(:mod:`handgrad.grade.bubblewrap`) unless the run is uncontained, never imported by the
grader's machinery on this side: it needs only the standard library and NumPy, and it starts
isolated (``-I``: no ``PYTHONPATH``, no user site, not even its own folder on ``sys.path``). It
then caps its own memory (``RLIMIT_AS``) and the size of any file it writes (``RLIMIT_FSIZE``: its
captured stdout and stderr, which go to a file), turns core dumps off, and only then puts the
submission's folder first on ``sys.path``.

The protocol, over the socket ``FD`` (``multiprocessing.connection`` framing): the grader sends
pickled requests ``(number, verb, ...)``; this side answers with ``(number, "ok", value)`` or
``(number, "raised", type name, message, traceback)``. A value is returned as it is when it is
data (arrays, numbers, strings, and tuples, lists and dicts of those); anything else stays here
and travels as a handle, ``(HANDLE, id, kind, type name)``, which later requests name as
``(HANDLE, id)``, or by its path from a module, ``(PATH, module, attr, ...)``. The grader
unpickles the answers with an allow-list of classes (:mod:`handgrad.grade.remote`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import inspect
import os
import pickle
import resource
import sys
import traceback
from multiprocessing.connection import Connection

HANDLE = "\x00handgrad-handle"
METHOD = "\x00handgrad-method"
PATH = "\x00handgrad-path"
DATA = (type(None), bool, int, float, complex, str, bytes)
OUTPUT_CAP = "\x00handgrad-output-cap"


class Sandbox:
    def __init__(self, folder: str) -> None:
        import numpy

        self.np = numpy
        self.folder = folder
        self.objects: dict[int, object] = {}

    def handle(self, value) -> tuple:
        self.objects[id(value)] = value
        kind = "class" if isinstance(value, type) else "callable" if callable(value) else "object"
        return (HANDLE, id(value), kind, type(value).__name__, id(type(value)))

    def encode(self, value, depth: int = 0):
        """Data as it is; anything else as a handle."""
        np = self.np
        if isinstance(value, DATA) or (isinstance(value, np.generic)
                                       and not isinstance(value, np.object_)):
            return value
        if type(value) is np.ndarray and not value.dtype.hasobject:
            return value
        if depth < 32 and type(value) in (tuple, list):
            return type(value)(self.encode(v, depth + 1) for v in value)
        if depth < 32 and type(value) is dict and all(isinstance(k, DATA) for k in value):
            return {k: self.encode(v, depth + 1) for k, v in value.items()}
        return self.handle(value)

    def resolve(self, ref):
        if ref[0] == HANDLE:
            owner = self.objects[ref[1]]
            return getattr(owner, ref[2]) if len(ref) == 3 else owner
        if ref[0] == PATH:
            import importlib

            value = importlib.import_module(ref[1])
            for attr in ref[2:]:
                value = getattr(value, attr)
            return value
        raise ValueError(f"not a reference: {ref!r}")

    def decode(self, value, depth: int = 0):
        if type(value) is tuple and value and isinstance(value[0], str) \
                and value[0] in (HANDLE, PATH):
            return self.resolve(value)
        if depth < 32 and type(value) in (tuple, list):
            return type(value)(self.decode(v, depth + 1) for v in value)
        if depth < 32 and type(value) is dict:
            return {k: self.decode(v, depth + 1) for k, v in value.items()}
        return value

    def state(self, value, depth: int = 0) -> str:
        """A digest of the arrays and containers reachable from an argument, to tell whether
        the call wrote into it."""
        np = self.np
        h = hashlib.blake2b(digest_size=16)
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            h.update(f"{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        elif depth < 32 and isinstance(value, list | tuple):
            h.update(f"seq{len(value)}".encode())
            for v in value:
                h.update(self.state(v, depth + 1).encode())
        elif depth < 32 and isinstance(value, dict):
            h.update(f"map{len(value)}".encode())
            for k in sorted(value, key=repr):
                h.update(repr(k).encode() + self.state(value[k], depth + 1).encode())
        else:
            h.update(repr(id(value)).encode())
        return h.hexdigest()

    def call(self, ref, args, kwargs):
        fn = self.resolve(ref)
        args, kwargs = self.decode(args), self.decode(kwargs)
        before = [self.state(a) for a in args], {k: self.state(v) for k, v in kwargs.items()}
        result = fn(*args, **kwargs)
        written = ({i: self.encode(a) for i, a in enumerate(args) if self.state(a) != before[0][i]},
                   {k: self.encode(v) for k, v in kwargs.items() if self.state(v) != before[1][k]})
        return self.encode(result), written

    def signature(self, ref):
        """The parameters of a callable: (name, kind, default or None, has a default)."""
        try:
            sig = inspect.signature(self.resolve(ref))
        except (TypeError, ValueError):
            return None
        return [(p.name, int(p.kind), p.default if isinstance(p.default, DATA) else None,
                 p.default is not p.empty) for p in sig.parameters.values()]

    def answer(self, verb: str, args: tuple):
        if verb == "get":
            ref, attr = args
            owner = self.resolve(ref)
            value = getattr(owner, attr)
            if inspect.ismethod(value) and value.__self__ is owner and ref[0] == HANDLE:
                return (METHOD,)  # called by name from now on (verb "callattr")
            return self.encode(value)
        if verb == "set":
            ref, attr, value = args
            setattr(self.resolve(ref), attr, self.decode(value))
            return None
        if verb == "call":
            return self.call(*args)
        if verb == "callattr":
            ref, attr, call_args, call_kwargs = args
            return self.call((HANDLE, id(self.resolve(ref)), attr), call_args, call_kwargs)
        if verb == "vars":
            return self.encode(dict(vars(self.resolve(args[0]))))
        if verb == "signature":
            return self.signature(args[0])
        if verb == "deepcopy":
            import copy

            return self.encode(copy.deepcopy(self.resolve(args[0])))
        if verb == "import":
            import importlib

            importlib.import_module(args[0])
            return None
        if verb == "forget":
            self.objects.pop(args[0], None)
            return None
        if verb == "has":
            import importlib.util

            return importlib.util.find_spec(args[0]) is not None
        raise ValueError(f"unknown request {verb!r}")


def _limit(memory: int, output: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if output > 0:
        resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))


def main(argv: list[str]) -> None:
    fd, folder, output_file = int(argv[0]), argv[1], argv[2]
    memory, output = int(argv[3]), int(argv[4])
    conn = Connection(fd)
    if output_file != "-":  # "-": the grader gave stdout and stderr already
        sink = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        os.close(sink)
    sandbox = Sandbox(folder)  # numpy is imported before the limits and the student's path
    _limit(memory, output)
    sys.dont_write_bytecode = True  # nothing written into the submission's folder
    sys.path.insert(0, folder)
    conn.send_bytes(pickle.dumps((0, "ok", "ready"), protocol=5))
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        number, verb, args = request[0], request[1], request[2:]
        try:
            reply = (number, "ok", sandbox.answer(verb, args))
            data = pickle.dumps(reply, protocol=5)
        except BaseException as exc:  # noqa: BLE001 - the grader reports it, this side goes on
            message = str(exc) if not isinstance(exc, SystemExit) else f"sys.exit({exc.code!r})"
            # Python ignores SIGXFSZ: a write past RLIMIT_FSIZE raises EFBIG instead
            name = OUTPUT_CAP if isinstance(exc, OSError) and exc.errno == errno.EFBIG \
                else type(exc).__name__
            data = pickle.dumps((number, "raised", name, message[:2000],
                                 traceback.format_exc()[-4000:]), protocol=5)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        conn.send_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1:])
