"""A Function in float16 and bfloat16 (and, on another device, in float64 and float32 there too),
against the reference differentiated in float64 on the CPU on the very same rounded inputs.

The tolerance is derived as for float32 (:func:`handgrad.oracles.autograd.rounding_of_reference`):
the reference run in that dtype on that device has its own error against float64, per tensor;
a right Function rounds within :data:`ROUNDING_MARGIN` times that, on top of a floor of a few
units of the dtype's rounding (:data:`FLOOR_ULPS`). Finite differences and the complex step
stay where they are: float64, on the CPU copy (the engine's float64 pass).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from handgrad.adapt.functions import FunctionInfo, function_of
from handgrad.caserun import CaseRun
from handgrad.oracles.autograd import ROUNDING_MARGIN
from handgrad.oracles.base import Oracle

LOW = {"float16": torch.float16, "bfloat16": torch.bfloat16}
WIDE = {"float64": torch.float64, "float32": torch.float32}
# The result of a right low-precision program is at least rounded once to the dtype (half an
# ulp relative) and its gradient passes through a few rounded steps; 4 ulps relative, and 1 ulp
# of the tensor's largest element absolute, is the floor under the reference-derived allowance
# (which is zero where the reference happens to round exactly).
FLOOR_ULPS = 4.0


def _eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def _run(run: CaseRun, call, inputs: dict[str, torch.Tensor], dout: np.ndarray,
         dtype: torch.dtype, device: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(out, {input: gradient}) of ``call(**tensors) -> out`` for S = sum(dout * out)."""
    keys = run.record.differentiable
    tensors = {k: (t.to(device=device, dtype=dtype).requires_grad_(k in keys)
                   if t.is_floating_point() else t.to(device)) for k, t in inputs.items()}
    with torch.enable_grad():
        out = call(**tensors)
        value = out.detach().cpu().double().numpy().copy()  # before a backward can write it
        up = torch.from_numpy(np.asarray(dout, np.float64)).to(device=device, dtype=out.dtype)
        grads = torch.autograd.grad((out * up.reshape(out.shape)).sum(),
                                    [tensors[k] for k in keys], allow_unused=True)
    as64 = {k: (torch.zeros_like(tensors[k]) if g is None else g).detach().cpu().double().numpy()
            for k, g in zip(keys, grads)}
    return value, as64


def _joined(info: FunctionInfo):
    def call(**tensors):
        outs = info.apply(tensors)
        return torch.cat([o.reshape(-1) for o in outs]) if info.spec.multi else outs[0]
    return call


def _devices_and_dtypes(info: FunctionInfo) -> tuple[str, list[str]]:
    device = info.checked_device
    low = [n for n in LOW if n in info.low_precision]
    return device, low if device == "cpu" else [*WIDE, *low]


def dtype_checks(run: CaseRun) -> None:
    info = function_of(run.record)
    device, names = _devices_and_dtypes(info)
    if device != "cpu" and device.startswith("cuda") and not torch.cuda.is_available():
        run.result("autograd", "(device)", "skipped",
                   message=f"device {device!r} asked for, but torch.cuda.is_available() is False "
                           "here: the device checks did not run")
        return
    if run.record.reference is None:
        run.result("autograd", "(low precision)", "skipped",
                   message="float16 and bfloat16 need a reference to size their tolerance")
        return
    left_out = [n for n in LOW if n not in info.low_precision]
    if left_out:
        run.result("autograd", "(low precision)", "skipped",
                   message=f"{' and '.join(left_out)} left out by the record (low_precision=)")
    base = {k: torch.from_numpy(np.array(v)) for k, v in run.inputs.items()}
    for name in names:
        dtype = LOW.get(name) or WIDE[name]
        label = name if device == "cpu" else f"{name}@{device}"
        sub = dataclasses.replace(run, dtype=label, results=[])
        rounded = {k: (t.to(dtype).double() if t.is_floating_point() else t)
                   for k, t in base.items()}
        dout = torch.from_numpy(np.asarray(run.dout, np.float64)).to(dtype).double().numpy()
        try:
            exact = _run(run, run.record.reference, rounded, dout, torch.float64, "cpu")
            ref = _run(run, run.record.reference, rounded, dout, dtype, device)
        except Exception as exc:  # noqa: BLE001 - a reference without this dtype is reported
            sub.result("autograd", "(reference)", "skipped",
                       message=f"the reference does not run in {label} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0]}), so no "
                               "tolerance can be derived")
            run.results += sub.results
            continue
        try:
            hand = _run(run, _joined(info), rounded, dout, dtype, device)
        except Exception as exc:  # noqa: BLE001
            sub.result("autograd", "(all)", "error", kind="exception",
                       message=f"the Function raised {type(exc).__name__} in {label}: "
                               f"{str(exc).splitlines()[0]}; it must run on {label} tensors "
                               "(no NumPy inside, no float64 constants)")
            run.results += sub.results
            continue
        floor = {"rtol": FLOOR_ULPS * _eps(dtype), "atol": _eps(dtype)}
        rows = [("forward", "(output)", hand[0], exact[0], ref[0])]
        rows += [("autograd", k, hand[1][k], exact[1][k], ref[1][k])
                 for k in run.record.differentiable]
        for check, key, got, truth, theirs in rows:
            allowance = ROUNDING_MARGIN * float(np.abs(theirs - truth).max(initial=0.0))
            sub.compare(check, key, got, truth, floor, allowance=allowance)
        run.results += sub.results


ORACLE = Oracle("function-dtypes", "the Function in float16 and bfloat16 (and on --device)",
                dtype_checks,
                wanted=lambda run: function_of(run.record) is not None
                and "autograd" in run.checks,
                fix="the Function must run on tensors of every floating dtype")
