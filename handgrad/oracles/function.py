"""What a custom ``torch.autograd.Function`` can get wrong that ``gradcheck`` never sees, checked
on every case of a record made by :func:`handgrad.adapt.function` (float64, CPU):

``layout``
    The upstream gradient as real graphs pass it: non-contiguous (after a transpose) and
    expanded with a stride of 0 (the gradient of a sum or a mean). A backward that calls
    ``grad_output.view(...)`` raises there, one that assumes contiguous memory computes garbage;
    ``gradcheck`` only ever passes contiguous upstream gradients. A backward that writes into
    ``grad_output`` is caught here too (the same tensor feeds the rest of the graph).
``requires-grad``
    The gradients of the other inputs must not change when one input does not require grad
    (``ctx.needs_input_grad`` used to skip work, not to change it).
``double-backward``
    The record's ``hvp`` is the double backward through the Function, which the hvp oracles
    check against the reference's and against differences of the backward. A Function that
    saves an intermediate that is neither input nor output (computed without a graph inside
    ``forward``) differentiates its backward as if that intermediate were a constant (pytorch
    issue 104040), silently; its hvp failures are diagnosed as such here.
``saved``
    The tensors named by ``saved=`` against the reference's tensors of those names: where the
    forward goes wrong first.

On another device (``--device``, or the record's ``device``) ``layout`` and ``requires-grad`` run
again there, in rows labelled ``float64@cuda``.

Writes into saved tensors or the output are caught by the engine's contract (the record's cache
exposes them), and a backward that differs between two calls by its repeatability check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from handgrad.adapt.functions import FunctionInfo, function_of
from handgrad.caserun import CaseRun
from handgrad.oracles.base import Oracle
from handgrad.report import Result
from handgrad.tolerances import tolerance

VIEW_FIX = ("use grad_output.reshape(...) or grad_output.contiguous().view(...): autograd passes "
            "upstream gradients with any strides (a transpose downstream makes them "
            "non-contiguous, a sum or mean expands them with stride 0)")


def _np(t: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    return (torch.zeros_like(like) if t is None else t).detach().cpu().double().numpy()


def _explain(run: CaseRun, r: Result, kind: str, message: str) -> None:
    """Replace a failed comparison's kind and message by what is wrong with the Function."""
    run.results[run.results.index(r)] = dataclasses.replace(r, kind=kind, message=message)


def _douts(run: CaseRun, info: FunctionInfo, device: str = "cpu",
           dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """The case's upstream gradient, one tensor per checked output."""
    shapes = None
    if info.spec.multi:
        shapes = tuple(tuple(o.shape) for o in info.apply(info.tensors(run.inputs,
                                                                       requires=())))
    return [torch.from_numpy(np.array(d, dtype=np.float64)).to(device=device, dtype=dtype)
            for d in info.spec.unpack(np.asarray(run.dout), shapes)]


def _strided(d: torch.Tensor) -> torch.Tensor:
    """The same values, not contiguous: column-major for 2+ axes, every second element for 1."""
    if d.dim() >= 2:
        axes = tuple(reversed(range(d.dim())))
        return d.permute(axes).contiguous().permute(axes)
    holder = torch.zeros(2 * d.numel(), dtype=d.dtype, device=d.device)
    holder[::2] = d
    return holder[::2]


def _expanded(d: torch.Tensor) -> torch.Tensor:
    """Values repeated along the last axis, with stride 0 there (as a mean's backward gives)."""
    return d[..., :1].expand_as(d)


def layouts(run: CaseRun, info: FunctionInfo, device: str = "cpu") -> None:
    douts = _douts(run, info, device)
    if all(d.dim() == 0 or d.numel() < 2 for d in douts):
        run.result("layout", "(upstream)", "skipped", message="the output has one element: "
                   "every upstream gradient is contiguous")
        return
    for what, make in (("a non-contiguous", _strided), ("an expanded (stride 0)", _expanded)):
        given = [make(d) if d.dim() else d for d in douts]
        plain = [g.contiguous() for g in given]
        pristine = [g.clone() for g in given]
        base = info.vjp(info.tensors(run.inputs, device=device), plain)
        strides = ", ".join(str(tuple(g.stride())) for g in given)
        tensors = info.tensors(run.inputs, device=device)
        try:
            got = info.vjp(tensors, given)
        except Exception as exc:  # noqa: BLE001 - the user's backward failing is the finding
            run.result("layout", "(upstream)", "fail", kind="upstream-layout",
                       message=f"backward raised {type(exc).__name__} on {what} grad_output "
                               f"(strides {strides}): {str(exc).splitlines()[0]}; {VIEW_FIX}")
            continue
        if any(not torch.equal(g, p) for g, p in zip(given, pristine)):
            run.result("layout", "(upstream)", "fail", kind="mutated-upstream",
                       message="backward wrote into grad_output, which the rest of the graph "
                               "reads too; compute into a new tensor (grad_output * x, not "
                               "grad_output.mul_(x))")
        tol = tolerance("float64", "autograd", run.record.tolerances)
        for k in info.differentiable:
            r = run.compare("layout", k, _np(got.get(k), tensors[k]),
                            _np(base.get(k), tensors[k]), tol)
            if r.status == "fail":
                _explain(run, r, "upstream-layout",
                         f"with {what} grad_output (strides {strides}) backward gives "
                             f"another gradient than with the same values contiguous: it "
                             f"reads memory as if contiguous; call .contiguous() on grad_output "
                         f"first. {r.message}")


def requires_grad(run: CaseRun, info: FunctionInfo, device: str = "cpu") -> None:
    keys = info.differentiable
    if len(keys) < 2:
        return
    douts = _douts(run, info, device)
    full = info.tensors(run.inputs, device=device)
    base = info.vjp(full, douts)
    tol = tolerance("float64", "autograd", run.record.tolerances)
    for off in keys:
        on = [k for k in keys if k != off]
        tensors = info.tensors(run.inputs, device=device, requires=on)
        try:
            got = info.vjp(tensors, douts)
        except Exception as exc:  # noqa: BLE001
            run.result("requires-grad", off, "fail", kind="requires-grad",
                       message=f"backward raised {type(exc).__name__} when {off!r} does not "
                               f"require grad: {str(exc).splitlines()[0]}; use "
                               "ctx.needs_input_grad to skip a gradient, and return None for it")
            continue
        for k in on:
            r = run.compare("requires-grad", k, _np(got.get(k), tensors[k]),
                            _np(base.get(k), full[k]), tol)
            if r.status == "fail":
                _explain(run, r, "requires-grad",
                         f"the gradient of {k!r} changes when {off!r} does not require "
                             f"grad: backward computes it differently depending on "
                         f"ctx.needs_input_grad. {r.message}")


SAVED_FIX = ("; the Function saves a tensor that is neither an input nor an output: computed "
             "inside forward without a graph, it is a constant to the double backward (pytorch "
             "issue 104040). Return it as an extra output and save that, or recompute it inside "
             "backward from the saved inputs")


DETACHED_FIX = ("; backward's gradients carry no graph (NumPy inside, .detach(), .data or "
                "torch.no_grad), so its double backward is zero: mark backward "
                "@once_differentiable (or pass double_backward=False) if it is not meant to be "
                "differentiated twice, else write it with torch operations")


def second_order(run: CaseRun, info: FunctionInfo) -> None:
    """The record's ``hvp`` is the double backward through the Function, checked by the hvp
    oracles; where it is wrong while the first derivative is right, and the Function saves an
    intermediate, that is the cause: their failures say so."""
    if not info.twice:
        if run.dtype == "float64":
            run.result("double-backward", "(all)", "skipped", message="backward is "
                       "once_differentiable (or the record says double_backward=False): its "
                       "double backward is not checked")
        return
    wrong = [r for r in run.results if r.check in ("hvp", "hvp-fd") and r.status == "fail"]
    first_wrong = any(r.check in ("autograd", "fd") and r.status == "fail" for r in run.results)
    if not wrong or first_wrong:
        return
    if info.saves_intermediate(run.inputs):
        for r in wrong:
            _explain(run, r, "saved-intermediate", r.message + SAVED_FIX)
    elif not _backward_has_graph(run, info):
        for r in wrong:
            _explain(run, r, "not-differentiable", r.message + DETACHED_FIX)


def _backward_has_graph(run: CaseRun, info: FunctionInfo) -> bool:
    """Whether the gradients backward returns, run with create_graph, depend on anything."""
    with torch.enable_grad():
        grads = info.vjp(info.tensors(run.inputs), _douts(run, info), create_graph=True)
    return any(g is not None and g.requires_grad for g in grads.values())


def saved(run: CaseRun, info: FunctionInfo) -> None:
    if not info.saved:
        return
    tensors = info.tensors(run.inputs)
    outs = info.apply(tensors)
    node = next((o.grad_fn for o in outs if o.grad_fn is not None), None)
    result = info.reference(**tensors)
    named = result[1] if isinstance(result, tuple) and len(result) == 2 else {}
    tol = tolerance("float64", "forward", run.record.tolerances)
    first_wrong = None
    for name, position in info.saved.items():
        if name not in named:
            run.result("saved", name, "error", kind="reference-error",
                       message=f"the reference returns no tensor {name!r}; return "
                               f"(out, {{{name!r}: tensor}})")
            continue
        held = node.saved_tensors[position] if node is not None else None
        if held is None:
            run.result("saved", name, "error", kind="bad-return",
                       message=f"ctx.saved_tensors[{position}] does not exist")
            continue
        r = run.compare("saved", name, _np(held, held), _np(named[name], held), tol)
        if r.status == "fail" and first_wrong is None:
            first_wrong = name
            _explain(run, r, r.kind, f"the first saved tensor (in the order of saved=) whose "
                     f"value differs from the reference's: the forward goes wrong at or before "
                     f"{name!r}. {r.message}")


CHECKS: tuple[Callable[[CaseRun, FunctionInfo], None], ...] = (saved, layouts, requires_grad,
                                                                second_order)


def function_checks(run: CaseRun) -> None:
    info = function_of(run.record)
    for check in CHECKS if run.dtype == "float64" else (second_order,):
        check(run, info)
    device = info.checked_device
    if run.dtype == "float64" and device != "cpu" and on_hand(device):
        # The checks of the upstream layout and of requires_grad again on the device (the
        # kernels there are others), in rows labelled with it.
        there = dataclasses.replace(run, dtype=f"float64@{device}", results=[])
        layouts(there, info, device)
        requires_grad(there, info, device)
        run.results += there.results


def on_hand(device: str) -> bool:
    """Whether ``device`` exists here (a missing one is reported by the dtype oracle)."""
    return not device.startswith("cuda") or torch.cuda.is_available()


ORACLE = Oracle("function", "the Function's own checks (layout, requires-grad, double "
                "backward)", function_checks,
                wanted=lambda run: function_of(run.record) is not None
                and bool({"contract", "autograd"} & run.checks),
                dtypes=("float64", "float32"), fix="the Function must run on CPU tensors")
