"""A module's global settings cannot turn correct code into a failure: handgrad runs its oracles
under explicit state (:mod:`handgrad.state`). Two folders checked in one run, the first of
which disables grad mode, sets torch's default dtype to float64 and makes numpy raise on every
floating-point error at import; both are right, and both pass."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from handgrad import cli

AFFINE = '''
import numpy as np
import torch
import handgrad
{prelude}

def forward(x, w, b):
    return x @ w + b, (x, w)


def backward(dout, cache):
    x, w = cache
    return {{"x": dout @ w.T, "w": x.T @ dout, "b": dout.sum(axis=0)}}


def reference(x, w, b):
    # a constant built in the default dtype, as references are written
    return x @ w + b * torch.ones(b.shape[0]).to(x.dtype)


RECORD = handgrad.Derivation(name="affine", forward=forward, backward=backward,
                             reference=reference, inputs="x: N D, w: D M, b: M",
                             dims={{"N": (2, 3), "D": (2, 3), "M": (2, 3)}})
'''

LEFTOVERS = '''
torch.set_grad_enabled(False)
torch.set_default_dtype(torch.float64)
np.seterr(all="raise")
'''


@pytest.fixture
def restore_globals():
    grad, dtype, errors = torch.is_grad_enabled(), torch.get_default_dtype(), np.geterr()
    yield
    torch.set_grad_enabled(grad)
    torch.set_default_dtype(dtype)
    np.seterr(**errors)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_global_settings_of_one_folder_fail_neither_folder(tmp_path, capsys, restore_globals,
                                                           jobs):
    folders = []
    for name, prelude in (("leftovers", LEFTOVERS), ("plain", "")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "grads.py").write_text(textwrap.dedent(AFFINE.format(
            prelude=prelude)))
        folders.append(str(tmp_path / name))
    status = cli.main(["check", "--path", *folders, "--cases", "2", "--json", "-j", jobs])
    rows = json.loads(capsys.readouterr().out)
    assert [r for r in rows if not r["passed"]] == []
    assert status == 0
    assert {r["check"] for r in rows} >= {"autograd", "fd", "taylor"}
