"""``handgrad new NAME``: the files of a new derivation, from a template whose functions raise
NotImplementedError until their TODOs are filled in (``handgrad check NAME`` reports them as not
yet implemented).

In a project that keeps references apart and requires the Markdown derivation
(``[tool.handgrad] reference_dir`` and ``require_docs``, as this repository does) it writes
``<path>/<stem>.py``, ``<reference_dir>/<stem>.py`` and ``<path>/<stem>.md``; elsewhere
``<path>/<stem>.py`` and ``<path>/<stem>_reference.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from handgrad.config import Config

RECORD = '''"""{name}: TODO say what the layer computes.

Shapes: x (N, D), W (D, M), b (M,) -> out (N, M).{doc_line}
"""

from __future__ import annotations

{imports}


def forward(x: np.ndarray, W: np.ndarray, b: np.ndarray):
    """out: (N, M), and the cache backward needs."""
    raise NotImplementedError("TODO: compute out ({tag}1) and return (out, cache)")


def backward(dout: np.ndarray, cache) -> dict[str, np.ndarray]:
    """dL/dx, dL/dW, dL/db from dout = dL/dout: (N, M), one chain-rule step per line."""
    raise NotImplementedError("TODO: dW ({tag}2), db ({tag}3), dx ({tag}4)")


RECORD = handgrad.Derivation(
    name="{name}",
    forward=forward,
    backward=backward,
    reference={reference_name},
    inputs="x: N D, W: D M, b: M",
    dims={{"N": (1, 4), "D": (1, 5), "M": (1, 3)}},
    tags={{"W": "{tag}2", "b": "{tag}3", "x": "{tag}4"}},
)
'''

REFERENCE = '''"""{name} in PyTorch, written independently of the NumPy code: the oracle's
program."""

from __future__ import annotations

import torch


def reference(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out: (N, M), with torch operations only."""
    raise NotImplementedError("TODO: the same computation as forward, with torch operations")
'''

MARKDOWN = r'''# {name}

TODO: one paragraph on what the layer computes and where it is used.

## Shapes

| symbol | shape | meaning |
|---|---|---|
| $x$ | $N \times D$ | TODO |
| $W$ | $D \times M$ | TODO |
| $b$ | $M$ | TODO |

## Forward

$$ \text{{out}} = \text{{TODO}} \tag{{{tag}1}} $$

## Backward

TODO: derive each gradient step by step from ({tag}1).

## Gradients

$$ \frac{{\partial L}}{{\partial W}} = \text{{TODO}} \tag{{{tag}2}} $$
$$ \frac{{\partial L}}{{\partial b}} = \text{{TODO}} \tag{{{tag}3}} $$
$$ \frac{{\partial L}}{{\partial x}} = \text{{TODO}} \tag{{{tag}4}} $$

## Common mistakes

TODO: the mistakes people make with it, each as a record with `expect="reject"`.
'''


def stem_of(name: str) -> str:
    stem = re.sub(r"\W", "_", name.replace("-", "_")).strip("_").lower()
    return stem if stem and not stem[0].isdigit() else f"d_{stem}"


def tag_of(name: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    return "".join(w[0] for w in words).upper()[:3] or "X"


def new(name: str, folder: Path, cfg: Config) -> list[Path]:
    """Write the files of derivation ``name`` under ``folder``; never overwrite one."""
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{name!r}: a derivation name has no spaces (e.g. 'my-layer')")
    stem, tag = stem_of(name), tag_of(name)
    repository = cfg.reference_dir is not None and cfg.require_docs
    record = folder / f"{stem}.py"
    if repository:  # the project's own packages: handgrad and the reference folder
        reference = cfg.reference_dir / f"{stem}.py"
        imports = ("import numpy as np\n\nimport handgrad\n"
                   f"from {cfg.reference_dir.name} import {stem} as ref")
        reference_name = "ref.reference"
    else:  # a plain folder: handgrad is installed, the reference is the sibling file
        reference = folder / f"{stem}_reference.py"
        imports = f"import handgrad\nimport numpy as np\nfrom {stem}_reference import reference"
        reference_name = "reference"
    files = {record: RECORD.format(name=name, tag=tag, imports=imports,
                                   reference_name=reference_name,
                                   doc_line=f" See {stem}.md." if repository else ""),
             reference: REFERENCE.format(name=name)}
    if repository:
        files[folder / f"{stem}.md"] = MARKDOWN.format(name=name, tag=tag)
    taken = [str(p) for p in files if p.exists()]
    if taken:
        raise FileExistsError(f"not overwriting {', '.join(taken)}; pick another name")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
