"""Code checked where it lives: a fresh project outside this repository, with handgrad installed,
holding course-style code in each adapter style, right and wrong. ``handgrad check --path``,
``handgrad check`` (from ``[tool.handgrad]``) and a plain ``pytest`` there pass the right ones
and reject each wrong one with its kind; ``handgrad new`` writes a derivation that is reported
as not yet implemented; ``derivations`` and ``reference`` are not importable there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

LAYERS = '''
import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_bias_per_row(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout


def leaky_forward(x, param):
    slope = param["slope"]
    return np.where(x > 0, x, slope * x), (x, slope)


def leaky_backward(dout, cache):
    x, slope = cache
    dx = dout.copy()
    dx[x <= 0] *= slope
    return dx


def step_forward(x, h, W):
    """Two outputs, as an LSTM step has: next_h and next_c."""
    a = x @ W + h
    next_h = np.tanh(a)
    next_c = 0.5 * a
    return next_h, next_c, (x, h, W, next_h)


def step_backward(dnext_h, dnext_c, cache):
    x, h, W, next_h = cache
    da = dnext_h * (1 - next_h ** 2) + 0.5 * dnext_c
    return da @ W.T, da, x.T @ da


def step_backward_forgets_c(dnext_h, dnext_c, cache):
    x, h, W, next_h = cache
    da = dnext_h * (1 - next_h ** 2)
    return da @ W.T, da, x.T @ da


def channel_scale_forward(x, g):
    """x in NHWC, one scale per channel."""
    return x * g, (x, g)


def channel_scale_backward(dout, cache):
    x, g = cache
    return dout * g, (dout * x).sum(axis=(0, 1, 2))


def channel_scale_backward_unreduced(dout, cache):
    x, g = cache
    return dout * g, (dout * x).sum(axis=0)


def softmax_loss(x, y):
    shifted = x - x.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).sum() / n
    dx = p.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def softmax_loss_not_averaged(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def two_layer_net(params, X, y):
    h = np.maximum(0, X @ params["W1"])
    loss, dscores = softmax_loss(h @ params["W2"], y)
    dh = dscores @ params["W2"].T
    dh[h <= 0] = 0
    return loss, {"W1": X.T @ dh, "W2": h.T @ dscores}


def two_layer_net_w2_sign(params, X, y):
    loss, grads = two_layer_net(params, X, y)
    return loss, {**grads, "W2": -grads["W2"]}


class Linear:
    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class LinearTransposedW(Linear):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = dout.T @ self.x
        return dx


class SGDLinear(Linear):
    """A layer whose backward also applies its update."""

    lr = 0.1

    def backward(self, dout):
        dx = super().backward(dout)
        self.W = self.W - self.lr * self.dW
        self.b = self.b - self.lr * self.db
        return dx
'''

RECORDS = '''
import torch
import torch.nn.functional as F
from handgrad import adapt

import layers as L

AFFINE = dict(shapes="x: N D, w: D M, b: M", dims={"N": (1, 4), "D": (1, 5), "M": (1, 3)},
              reference=lambda x, w, b: x @ w + b)
STEP = dict(shapes="x: N D, h: N H, W: D H", outputs="next_h: N H, next_c: N H",
            dims={"N": (1, 3), "D": (1, 4), "H": (1, 4)},
            reference=lambda x, h, W: (torch.tanh(x @ W + h), 0.5 * (x @ W + h)))
SCALE = dict(shapes="x: N H W C, g: C", reference_shapes="x: N C H W, out: N C H W",
             outputs="out: N H W C", dims={"N": (1, 2), "H": (1, 3), "W": (1, 3), "C": (2, 4)},
             reference=lambda x, g: x * g[None, :, None, None])
SOFTMAX = dict(shapes="x: N C, y: N", labels={"y": "C"}, dims={"N": (1, 5), "C": (2, 5)},
               reference=lambda x, y: F.cross_entropy(x, y.long()))
NET = dict(shapes="X: N D, y: N", params="W1: D H, W2: H C", labels={"y": "C"}, nondiff={"X"},
           dims={"N": (2, 5), "D": (2, 4), "H": (2, 5), "C": (2, 4)},
           fan_in={"W1": "D", "W2": "H"},
           reference=lambda X, y, W1, W2: F.cross_entropy(torch.relu(X @ W1) @ W2, y.long()))
LINEAR = dict(shapes="x: N D", params={"W": "D M", "b": "M"},
              dims={"N": (1, 4), "D": (1, 5), "M": (1, 3)},
              reference=lambda x, W, b: x @ W + b)


def wrong(kind, erratum):
    return {"expect": "reject", "expect_kind": kind, "erratum": erratum}


RECORDS = [
    adapt.pair("affine", L.affine_forward, L.affine_backward, **AFFINE),
    adapt.pair("affine-bias-per-row", L.affine_forward, L.affine_backward_bias_per_row,
               **AFFINE, **wrong("wrong-shape", "db not summed over the batch")),
    adapt.pair("leaky", L.leaky_forward, L.leaky_backward, shapes="x: N D",
               dims={"N": (1, 4), "D": (1, 5)}, args=({"slope": 0.1},),
               reference=lambda x: F.leaky_relu(x, 0.1)),
    adapt.pair("step", L.step_forward, L.step_backward, **STEP),
    adapt.pair("step-forgets-c", L.step_forward, L.step_backward_forgets_c, **STEP,
               **wrong("values", "dnext_c left out of da")),
    adapt.pair("scale-nhwc", L.channel_scale_forward, L.channel_scale_backward, **SCALE),
    adapt.pair("scale-nhwc-unreduced", L.channel_scale_forward,
               L.channel_scale_backward_unreduced, **SCALE,
               **wrong("wrong-shape", "dg summed over the batch only")),
    adapt.loss("softmax", L.softmax_loss, **SOFTMAX),
    adapt.loss("softmax-not-averaged", L.softmax_loss_not_averaged, **SOFTMAX,
               **wrong("factor", "the 1/N of the mean left out of dx")),
    adapt.loss("two-layer", L.two_layer_net, **NET),
    adapt.loss("two-layer-w2-sign", L.two_layer_net_w2_sign, **NET,
               **wrong("sign", "dW2 with its sign flipped")),
    adapt.layer("linear", L.Linear, **LINEAR),
    adapt.layer("linear-dw-transposed", L.LinearTransposedW, **LINEAR,
                **wrong("wrong-shape", "dW = dout.T @ x")),
    adapt.layer("sgd-linear", L.SGDLinear, **LINEAR, lr="lr"),
]
'''

PYPROJECT = '''
[project]
name = "homework"
version = "0"

[tool.handgrad]
paths = ["grads"]
'''


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("homework")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "grads").mkdir()
    (root / "grads" / "layers.py").write_text(textwrap.dedent(LAYERS))
    (root / "grads" / "records.py").write_text(textwrap.dedent(RECORDS))
    return root


def test_handgrad_check_with_a_path_passes_right_and_rejects_wrong_with_their_kind(project):
    done = run([str(BIN / "handgrad"), "check", "--path", "grads", "--cases", "3", "--json"],
               project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(done.stdout)
    by_record: dict[str, list] = {}
    for r in rows:
        by_record.setdefault(r["derivation"], []).append(r)
    assert len(by_record) == 14
    wrong = {name for name, rs in by_record.items() if rs[0]["expect"] == "reject"}
    assert len(wrong) == 6
    for name, rs in by_record.items():
        failed = [r for r in rs if not r["passed"]]
        assert bool(failed) == (name in wrong), (name, failed[:2])


def test_handgrad_check_reads_the_paths_from_pyproject(project):
    done = run([str(BIN / "handgrad"), "check", "--cases", "2"], project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "14/14 derivations as expected" in done.stdout


def test_a_plain_pytest_collects_and_checks_the_records(project):
    done = run([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "--grad-cases", "2"],
               project)
    assert done.returncode == 0, done.stdout[-3000:]
    # 8 right records x (2 cases + coverage) + 6 rejections
    assert "30 passed" in done.stdout, done.stdout[-2000:]


def test_a_wrong_kind_fails_pytest_there(project, tmp_path):
    """A rejection with another kind than the record expects is a failing test."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "grads").mkdir()
    (tmp_path / "grads" / "layers.py").write_text(textwrap.dedent(LAYERS))
    (tmp_path / "grads" / "records.py").write_text(textwrap.dedent(RECORDS).replace(
        'wrong("sign", "dW2', 'wrong("factor", "dW2'))
    done = run([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "--grad-cases", "2",
                "-k", "two-layer"], tmp_path)
    assert done.returncode == 1
    assert "two-layer-w2-sign[rejected]" in done.stdout
    assert "expected a rejection of kind 'factor', got fail 'sign'" in done.stdout


def test_this_repositorys_folders_are_not_importable_outside_it(tmp_path):
    for package in ("derivations", "reference"):
        done = run([sys.executable, "-c", f"import {package}"], tmp_path)
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
    done = run([sys.executable, "-c", "import handgrad, handgrad.pytest_plugin"], tmp_path)
    assert done.returncode == 0, done.stderr


def test_handgrad_new_writes_a_derivation_reported_as_not_implemented(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    done = run([str(BIN / "handgrad"), "new", "my-layer"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "grads" / "my_layer.py").exists()
    assert (tmp_path / "grads" / "my_layer_reference.py").exists()
    done = run([str(BIN / "handgrad"), "check", "my-layer", "--cases", "2"], tmp_path)
    assert done.returncode == 1
    assert "NOT IMPLEMENTED YET" in done.stdout and "TODO" in done.stdout
    again = run([str(BIN / "handgrad"), "new", "my-layer"], tmp_path)
    assert again.returncode == 2 and "not overwriting" in again.stderr


def test_handgrad_new_in_a_repository_like_this_one_writes_the_markdown(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace(
        'paths = ["grads"]', 'paths = ["derivations"]\nreference_dir = "reference"\n'
                             "require_docs = true"))
    done = run([str(BIN / "handgrad"), "new", "max-out"], tmp_path)
    assert done.returncode == 0, done.stderr
    md = (tmp_path / "derivations" / "max_out.md").read_text()
    for section in ("Shapes", "Forward", "Backward", "Gradients", "Common mistakes"):
        assert f"## {section}" in md
    assert "\\tag{MO2}" in md and "(MO2)" in (tmp_path / "derivations" / "max_out.py").read_text()
    assert (tmp_path / "reference" / "max_out.py").exists()
