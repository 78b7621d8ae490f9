"""What the benchmarks ran on, and what this machine's GEMM rate usually is.

:func:`machine` names the CPU model, its SIMD level, the cores, NumPy's BLAS with the kernel it
chose and torch's kernels, BLAS and threads: a hand/autograd ratio means little without them (an
AVX-512 CPU or another BLAS kernel moves it a lot).

"Usual" GEMM rate, for the loaded-machine warning: the best rate ever measured by a benchmark run
on this CPU model, with these thread counts, per dtype and library, stored in
``$XDG_CACHE_HOME/handgrad/gemm-rates.json`` (default ``~/.cache``). A run whose GEMM rate falls
below :data:`LOADED_FRACTION` of that best was slowed by something else on the machine (another
tenant, a busy core), and its ratios are suspect. The first run on a machine has no history; it
is then compared with its own best probe of the run only (the roof is timed at the start and at
the end), which catches a load that came or went during the run and nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

LOADED_FRACTION = 0.6
"""A GEMM rate under 60 % of the usual one: on an idle 2-core VM ten runs' roofs stayed within
10 % of each other (116-125 GFLOP/s in float64), while runs beside another busy process lost
half or more; 60 % leaves the normal spread well alone."""


def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` of a /proc/cpuinfo text, or "unknown"."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def simd_level(cpuinfo: str) -> str:
    """The widest vector instruction set in the ``flags`` of a /proc/cpuinfo text: "avx512"
    (with avx512f), "avx2", "avx", "sse4.2" or "unknown"."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    for flag, level in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"),
                        ("sse4_2", "sse4.2")):
        if flag in flags:
            return level
    return "unknown"


def _numpy_blas() -> str:
    """NumPy's BLAS with the kernel it chose and its threads."""
    import numpy  # noqa: F401 - threadpoolctl sees only the libraries already loaded
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(f"{p['internal_api']} {p.get('version') or ''} kernel "
                     f"{p.get('architecture') or '?'}, {p['num_threads']} threads"
                     for p in pools) or "none found"


def _torch_backend() -> str:
    """torch's CPU capability (its vector kernels), BLAS and intra-op threads."""
    import torch

    blas = next((line.strip() for line in torch.__config__.parallel_info().splitlines()
                 if "Math Kernel Library" in line or "OpenBLAS" in line), "BLAS unknown")
    return f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, " \
        f"{blas}, {torch.get_num_threads()} threads"


def machine(cpuinfo_path: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """What the benchmarks ran on: CPU model, SIMD level, cores, NumPy's BLAS and kernel,
    torch's kernels and BLAS, thread counts. Unknown parts say "unknown"."""
    try:
        cpuinfo = Path(cpuinfo_path).read_text()
    except OSError:
        cpuinfo = ""
    return {"cpu": cpu_model(cpuinfo), "simd": simd_level(cpuinfo),
            "cores": str(os.cpu_count() or "unknown"), "numpy": _numpy_blas(),
            "torch": _torch_backend()}


def machine_lines(info: Mapping[str, str]) -> list[str]:
    return [f"machine: {info['cpu']}, {info['simd']}, {info['cores']} cores",
            f"numpy BLAS: {info['numpy']}", f"torch: {info['torch']}"]


def rates_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "handgrad" / "gemm-rates.json"


def _machine_key(info: Mapping[str, str]) -> str:
    return f"{info['cpu']} | {info['numpy']} | {info['torch']}"


def usual_rates(info: Mapping[str, str], path: Path | None = None
                ) -> dict[str, dict[str, float | str]]:
    """``"dtype library"`` -> {"gflops": best rate, "when": ISO date} stored for this machine
    (CPU model, BLAS libraries and thread counts); empty without history or when the file is
    unreadable (a corrupt cache never stops a benchmark run)."""
    try:
        stored = json.loads((path or rates_file()).read_text())
        return dict(stored.get(_machine_key(info), {}))
    except (OSError, ValueError, AttributeError):
        return {}


def remember_rates(info: Mapping[str, str], rates: Mapping[str, float],
                   path: Path | None = None) -> None:
    """Keep the best rate of each ``"dtype library"`` key for this machine (best so far)."""
    path = path or rates_file()
    try:
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    mine = stored.setdefault(_machine_key(info), {})
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for key, rate in rates.items():
        if rate > float(mine.get(key, {}).get("gflops", 0.0)):
            mine[key] = {"gflops": rate, "when": now}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1))
    except OSError:
        pass


def load_warnings(run: Mapping[str, list[float]], usual: Mapping[str, Mapping]) -> list[str]:
    """A line per ``"dtype library"`` whose slowest GEMM probe in this run (``run``: every
    probe's GFLOP/s) is under :data:`LOADED_FRACTION` of the usual rate: the stored best of
    earlier runs on this machine when there is one and it is higher, else the best probe of this
    run (then only a load that came or went during the run shows)."""
    lines = []
    for key, rates in sorted(run.items()):
        stored = usual.get(key)
        if stored and float(stored["gflops"]) > max(rates):
            usual_rate = float(stored["gflops"])
            where = f"the best of earlier runs on this machine ({stored.get('when', '?')})"
        else:
            usual_rate = max(rates)
            where = "the best probe of this run"
        worst = min(rates)
        if worst < LOADED_FRACTION * usual_rate:
            lines.append(f"warning: GEMM {key} ran at {worst:.1f} GFLOP/s, "
                         f"{worst / usual_rate:.0%} of {usual_rate:.1f} GFLOP/s, {where}: the "
                         "machine was probably busy with other work, and these ratios may not "
                         "be its own")
    return lines
