"""Nothing the code under test does ends a ``handgrad check`` run or lands in its report: a
``sys.exit`` or a ``KeyboardInterrupt`` raised by a backward is an error row and the records
after it run; under ``-j 2`` a worker killed by ``os._exit`` or a segfault is reported at once
as what it was (exit status, signal), not as a timeout, and the worker's traceback does not
reach the terminal; what the code prints is kept out of the report and shown with
``--verbose``."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from handgrad import cli

HEADER = '''
import handgrad


def forward(x, W):
    return x @ W, (x, W)


def backward(dout, cache):
    x, W = cache
    return {"x": dout @ W.T, "W": x.T @ dout}


def record(name, backward):
    return handgrad.Derivation(name=name, forward=forward, backward=backward,
                               reference=lambda x, W: x @ W, inputs="x: N D, W: D K",
                               dims={"N": (2, 3), "D": (2, 3), "K": (2, 3)})
'''

ESCAPES = '''

def exits(dout, cache):
    import sys
    sys.exit("giving up")


def interrupts(dout, cache):
    raise KeyboardInterrupt("not a real Ctrl-C")


def chatty(dout, cache):
    print("dW looks like", cache[1].shape)
    return backward(dout, cache)


A_EXITS = record("a-exits", exits)
B_INTERRUPTS = record("b-interrupts", interrupts)
C_CHATTY = record("c-chatty", chatty)
D_RIGHT = record("d-right", backward)
'''

CRASHES = '''

def quits(dout, cache):
    import os
    os._exit(3)


def segfaults(dout, cache):
    import ctypes
    ctypes.string_at(0)


A_QUITS = record("a-quits", quits)
B_SEGFAULTS = record("b-segfaults", segfaults)
C_RIGHT = record("c-right", backward)
'''


def folder(tmp_path: Path, body: str) -> str:
    (tmp_path / "grads").mkdir()
    (tmp_path / "grads" / "records.py").write_text(textwrap.dedent(HEADER + body))
    return str(tmp_path / "grads")


def by_record(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["derivation"], []).append(r)
    return out


def test_sys_exit_and_keyboard_interrupt_from_code_are_error_rows(tmp_path, capfd):
    path = folder(tmp_path, ESCAPES)
    assert cli.main(["check", "--path", path, "--cases", "1", "--json"]) == 1
    out, err = capfd.readouterr()
    rows = by_record(json.loads(out))  # nothing printed by the code corrupts the JSON
    assert set(rows) == {"a-exits", "b-interrupts", "c-chatty", "d-right"}
    exits = [r for r in rows["a-exits"] if r["status"] == "error"]
    assert exits and "called sys.exit('giving up')" in exits[0]["message"]
    assert any("KeyboardInterrupt: not a real Ctrl-C" in r["message"]
               for r in rows["b-interrupts"])
    assert all(r["passed"] for r in rows["c-chatty"] + rows["d-right"])
    assert "dW looks like" not in out + err


def test_printed_output_is_shown_with_verbose_only(tmp_path, capfd):
    path = folder(tmp_path, ESCAPES)
    cli.main(["check", "c-chatty", "--path", path, "--cases", "1"])
    assert "dW looks like" not in capfd.readouterr().out
    cli.main(["check", "c-chatty", "--path", path, "--cases", "1", "--verbose"])
    shown = capfd.readouterr().out
    assert "the code under test printed:" in shown and "| dW looks like (" in shown


@pytest.mark.parametrize("jobs", ["2"])
def test_a_dead_worker_is_reported_at_once_as_what_killed_it(tmp_path, capfd, jobs):
    path = folder(tmp_path, CRASHES)
    started = time.monotonic()
    assert cli.main(["check", "--path", path, "--cases", "1", "--json", "-j", jobs,
                     "--timeout", "120"]) == 1
    assert time.monotonic() - started < 60, "a dead worker must not wait out the timeout"
    out, err = capfd.readouterr()
    rows = by_record(json.loads(out))
    quits = [r for r in rows["a-quits"] if r["status"] == "error"]
    assert quits[0]["kind"] == "crash" and "exit status 3" in quits[0]["message"]
    segv = [r for r in rows["b-segfaults"] if r["status"] == "error"]
    assert segv[0]["kind"] == "crash" and "signal SIGSEGV" in segv[0]["message"]
    assert all(r["passed"] for r in rows["c-right"])
    assert "Traceback" not in err and "Fatal Python error" not in err
