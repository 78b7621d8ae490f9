"""Check time against parameter count, from a pytest-benchmark JSON of tests/test_scale.py:

    pytest tests/test_scale.py --benchmark-enable --benchmark-json=scale.json
    python docs/plot_check_time.py scale.json docs/check-time.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source) as f:
        benchmarks = json.load(f)["benchmarks"]
    rows = sorted((b["extra_info"]["parameters"], b["stats"]["median"]) for b in benchmarks
                  if b["group"] == "full check against parameter count")
    params, seconds = zip(*rows)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    ax.loglog(params, seconds, "o-", label="every oracle, one case (median)")
    scale = seconds[-1] / params[-1]
    ax.loglog(params, [scale * p for p in params], "--", color="grey", label="linear in size")
    ax.set_xlabel("parameters of the one-hidden-layer MLP (784 x M x 10, batch 64)")
    ax.set_ylabel("seconds")
    ax.set_title("handgrad check: time against parameter count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(*sys.argv[1:3])
