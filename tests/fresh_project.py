"""A new user's project, written from scratch outside this repository: a pyproject with
``[tool.handgrad] paths = ["grads"]``, a dense ReLU layer with ``bench`` dims and an elementwise
scale without them, in the user's own style (functions named as they like, the reference in the
same file)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PYPROJECT = """[project]
name = "my-kernels"
version = "0"

[tool.handgrad]
paths = ["grads"]
"""

DENSE = '''"""A dense ReLU layer, as I derived it on paper: y = relu(x W + b)."""
import numpy as np
import torch

from handgrad import Derivation


def dense_forward(x, W, b):
    a = x @ W + b
    y = np.maximum(a, 0.0)
    return y, (x, W, a)


def dense_backward(dy, cache):
    x, W, a = cache
    da = dy * (a > 0)
    return {"x": da @ W.T, "W": x.T @ da, "b": da.sum(axis=0)}


def dense_torch(x, W, b):
    return torch.relu(x @ W + b)


DENSE = Derivation(
    name="dense-relu",
    forward=dense_forward,
    backward=dense_backward,
    reference=dense_torch,
    inputs="x: N D, W: D M, b: M",
    dims={"N": (2, 5), "D": (2, 6), "M": (2, 4)},
    bench=({"N": 256, "D": 512, "M": 256},),
    flops=lambda d: 6.0 * d["N"] * d["D"] * d["M"],
)
'''

SCALE = '''import torch

from handgrad import Derivation


def fwd(x, s):
    return x * s, (x, s)


def bwd(g, cache):
    x, s = cache
    return {"x": g * s, "s": (g * x).sum(axis=0)}


SCALE = Derivation(name="scale-columns", forward=fwd, backward=bwd,
                   reference=lambda x, s: x * s, inputs="x: N D, s: D",
                   dims={"N": (1, 4), "D": (1, 4)})
'''


def make(root: Path) -> Path:
    """Write the project under ``root`` (a temporary folder) and return it."""
    (root / "grads").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "grads" / "dense.py").write_text(DENSE)
    (root / "grads" / "scale.py").write_text(SCALE)
    return root


def environment(root: Path) -> dict[str, str]:
    """The user's shell: this environment's scripts first, the GEMM history kept inside the
    project (never the tester's ~/.cache), no PYTHONPATH pointing into this repository."""
    # Nor the variables of the pytest running this test (PYTEST_XDIST_WORKER and the like):
    # the user's pytest is not one of its workers.
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("PYTEST_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(root / "cache")
    return env
