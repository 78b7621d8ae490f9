"""The operating-system sandbox of a submission's process: bubblewrap (``bwrap``, the sandbox
Flatpak uses), not a home-made one.

:func:`command` is the ``bwrap`` command line that a submission's interpreter is started under:

- new user, PID, IPC, UTS, cgroup and network namespaces (``--unshare-all --unshare-user``): the
  process runs as ``nobody`` with no capabilities and cannot create user namespaces of its own;
  it sees no process but its own and its children, no network but a loopback of its own;
- a root of its own (a tmpfs) holding, read-only, ``/usr`` (and the ``/bin``, ``/lib``, ...
  links into it), the Python installation (``sys.prefix``, ``sys.base_prefix``, the folder of
  the interpreter) and the handgrad package; a ``/proc`` of its PID namespace, a minimal
  ``/dev``, a private ``/tmp`` (a tmpfs, capped at the memory cap);
- its own copy of the folder, bound writable at the path the grader gave it: the only place it
  can write that outlives it;
- every path the grader names as hidden (the staff's files, the other submissions) that lies
  inside one of those read-only trees covered over (an empty tmpfs for a folder; for a file,
  ``/dev/null`` on a mount without devices, which reads as permission denied), so that a
  staff file kept inside the Python installation is not readable either;
- ``--die-with-parent`` and ``--new-session``: it dies with the grader, and it cannot push
  characters into the grader's terminal. When its first process ends, the PID namespace ends and
  the kernel kills everything it started (a double-forked daemon included).

Its options reach bwrap through a pipe (``--args FD``, :func:`through_fd`), so that the command
line of the sandbox's PID 1, which the submission can read in its ``/proc``, names no path.
The sockets the grader passes (``pass_fds``) stay open through ``bwrap``, which closes nothing it
inherits. The memory, output and time caps are the sandbox script's own (``RLIMIT_AS``,
``RLIMIT_FSIZE``) and the grader's (per-call timeout, budget).

:func:`probe` starts the interpreter once in that sandbox, and says why it cannot (``bwrap``
missing, no unprivileged user namespaces) and what to do.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import handgrad

NOBODY = 65534
# Debian and most distributions keep /bin, /lib, ... as links into /usr; older ones as folders.
SYSTEM_TOPS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
PROBE_TIMEOUT = 60.0  # seconds: one interpreter start, on a busy machine

HELP = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install "
    "bubblewrap; Arch: pacman -S bubblewrap) and allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 on older Debian; on Ubuntu 24.04 "
    "sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap; in "
    "Docker, run the container with --security-opt seccomp=unconfined --security-opt "
    "apparmor=unconfined, or --privileged). Where every submission already runs in a container "
    "of its own (Gradescope's autograder, one container per submission), pass --uncontained: "
    "the run is then graded without bubblewrap, and every output says so")


class SandboxUnavailableError(Exception):
    """bwrap is missing or cannot create its namespaces here."""


def executable() -> str | None:
    return shutil.which("bwrap")


def readable_roots() -> list[Path]:
    """The trees a submission's interpreter needs to read: the Python installation (the
    virtual environment and the interpreter it was made from) and the handgrad package."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  Path(sys.executable).parent, Path(sys.executable).resolve().parent,
                  Path(handgrad.__file__).resolve().parent]
    roots: list[Path] = []
    for path in sorted({Path(p).resolve() for p in candidates}, key=lambda p: len(p.parts)):
        if path == Path("/usr") or path.is_relative_to("/usr"):
            continue  # bound with the system
        if not any(path.is_relative_to(r) for r in roots):
            roots.append(path)
    return roots


@functools.cache
def _disables_userns(bwrap: str) -> bool:
    """bwrap 0.8 and later can forbid the sandbox to make user namespaces of its own."""
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--disable-userns" in out.stdout + out.stderr


def command(writable: Path, hidden: Sequence[str | Path] = (), tmp_bytes: int = 0) -> list[str]:
    """The ``bwrap`` arguments, up to and including ``--``, that start a process which can
    write ``writable`` (and its private ``/tmp``) and read only the system, the Python
    installation and handgrad, less ``hidden``. ``tmp_bytes`` caps ``/tmp`` (0: no cap)."""
    bwrap = executable()
    if bwrap is None:
        raise SandboxUnavailableError(f"bwrap (bubblewrap) is not installed; {HELP}")
    args = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid",
            str(NOBODY), "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--hostname", "submission"]
    if _disables_userns(bwrap):
        args.append("--disable-userns")
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += (["--size", str(tmp_bytes)] if tmp_bytes > 0 else []) + ["--tmpfs", "/tmp"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_TOPS:
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    roots = readable_roots()
    for root in roots:
        args += ["--ro-bind", str(root), str(root)]
    writable = Path(writable).resolve()
    for path in hidden:
        path = Path(path).resolve()
        if path == writable or writable.is_relative_to(path):
            continue
        if any(path.is_relative_to(r) for r in [Path("/usr"), *roots]):
            args += ["--tmpfs", str(path)] if path.is_dir() else \
                ["--ro-bind", "/dev/null", str(path)]
    args += ["--bind", str(writable), str(writable), "--chdir", str(writable), "--"]
    return args


def through_fd(args: list[str]) -> tuple[list[str], int]:
    """``bwrap --args FD`` and that FD (a pipe, to pass to the child): bwrap reads its options
    from it, so that the sandbox's PID 1 (bwrap) shows no paths on its ``/proc`` command line.
    The caller closes the FD once the process has started."""
    read, write = os.pipe()
    data = b"".join(a.encode() + b"\0" for a in args[1:args.index("--")])
    if len(data) > 60_000:  # beyond what a pipe holds without a reader: name them outright
        os.close(read)
        os.close(write)
        return args, -1
    os.write(write, data)
    os.close(write)
    return [args[0], "--args", str(read), *args[args.index("--"):]], read


def exit_signal(code: int) -> int | None:
    """The signal that killed the sandboxed process, from bwrap's exit status (bwrap exits
    with 128 + the signal's number when its child is killed)."""
    return code - 128 if 128 < code < 128 + 65 else None


@functools.cache
def probe() -> None:
    """Start the interpreter once in the sandbox and import NumPy there; raise
    :class:`SandboxUnavailableError` saying why not and what to do."""
    scratch = Path(__import__("tempfile").mkdtemp(prefix="handgrad-probe-"))
    try:
        argv = command(scratch) + [sys.executable, "-I", "-c", "import numpy"]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SandboxUnavailableError(f"bwrap did not start Python within "
                                          f"{PROBE_TIMEOUT:g} s; {HELP}") from None
        except OSError as exc:
            raise SandboxUnavailableError(f"bwrap could not be run ({exc}); {HELP}") from None
        if out.returncode != 0:
            why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
            raise SandboxUnavailableError(f"bwrap cannot create the submission's sandbox here "
                                          f"({why}); {HELP}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
