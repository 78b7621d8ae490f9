"""What the code under test may not do to a run: end it, or write into its report.

A ``SystemExit`` (``sys.exit("...")`` in a backward) or a ``KeyboardInterrupt`` raised by the
code under test is a result like any exception; only a real Ctrl-C stops the run. The two are
told apart by a SIGINT handler (:func:`watch_interrupts`) that notes the signal before Python
raises ``KeyboardInterrupt``: a ``KeyboardInterrupt`` with no signal noted came from code.

What the code under test prints is kept apart (:func:`captured`), bounded (:data:`OUTPUT_CAP`),
and attached to its report (:func:`remember_output`), to be shown when asked (``--verbose``).
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import weakref
from collections.abc import Iterator

# What is kept of the output of one record's code: enough for any debugging print, bounded
# so that a print in a loop cannot fill the memory of the run (the rest is counted).
OUTPUT_CAP = 64 * 1024

_watching = False
_signalled = False


def watch_interrupts() -> None:
    """Note real SIGINTs from now on (main thread only; a no-op where someone else ignores or
    defaults the signal, or when already watching)."""
    global _watching
    if _watching or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):
        return

    def noted(signum, frame):
        global _signalled
        _signalled = True
        previous(signum, frame)

    signal.signal(signal.SIGINT, noted)
    _watching = True


def from_code(exc: BaseException) -> bool:
    """True when ``exc`` is the code under test's to answer for (a result), False when it must
    stop the run (a real Ctrl-C; or a KeyboardInterrupt where SIGINT is not watched, which
    cannot be told from one)."""
    if isinstance(exc, Exception | SystemExit):
        return True
    if isinstance(exc, KeyboardInterrupt):
        return _watching and not _signalled
    return False


def escaped(exc: BaseException) -> str:
    """How a SystemExit or KeyboardInterrupt from the code under test reads in a message."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})" if exc.code is not None else "called sys.exit()"
    return f"raised {type(exc).__name__}: {exc}"


class BoundedText(io.TextIOBase):
    """A text sink that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.cap, self.kept, self.dropped = cap, [], 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.cap - self.size
        self.kept.append(text[:max(room, 0)])
        self.size += min(len(text), max(room, 0))
        self.dropped += max(len(text) - max(room, 0), 0)
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self.kept)
        return text + (f"\n[... {self.dropped} more characters not kept]" if self.dropped
                       else "")


@contextlib.contextmanager
def captured() -> Iterator[BoundedText]:
    """Python-level capture of stdout and stderr (what ``print`` and tracebacks write). The
    terminal display keeps its own handle on the real stdout, so it is not captured."""
    sink = BoundedText()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield sink


_OUTPUT: dict[int, str] = {}


def remember_output(report, text: str) -> None:
    """Keep what the code of ``report``'s record printed, while the report lives."""
    if text:
        _OUTPUT[id(report)] = _OUTPUT.get(id(report), "") + text
        weakref.finalize(report, _OUTPUT.pop, id(report), None)


def output_of(report) -> str:
    return _OUTPUT.get(id(report), "")
