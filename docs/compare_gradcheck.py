"""The measured rows of the README table "Compared with the checkers people use": what
torch.autograd.gradcheck / gradgradcheck and handgrad say about hand linearisations of
y = tanh(x W) and y = relu(x W), wrapped as torch.autograd.Function for torch (the only way
torch can see a hand JVP or HVP). Run from the repository root:
``PYTHONPATH=. python docs/compare_gradcheck.py``."""

import dataclasses

import numpy as np
import torch
from torch.autograd import gradcheck, gradgradcheck

from handgrad.cases import Case
from handgrad.check import check_case
from tests import linear_records


def layer(hvp="right", jvp="right", act="tanh"):
    def f(z):
        return torch.tanh(z) if act == "tanh" else torch.relu(z)

    def f1(y, z):
        return 1 - y ** 2 if act == "tanh" else (z > 0).to(z.dtype)

    def f2(y, z):
        return -2 * y * (1 - y ** 2) if act == "tanh" else torch.zeros_like(z)

    class Grad(torch.autograd.Function):
        """(dx, dW) = backward(dout) by hand; its backward is the hand second order."""
        @staticmethod
        def forward(ctx, x, W, dout):
            z = x @ W
            y = f(z)
            ctx.save_for_backward(x, W, dout, y, z)
            gz = dout * f1(y, z)
            return gz @ W.T, x.T @ gz

        @staticmethod
        def backward(ctx, vx, vW):
            x, W, dout, y, z = ctx.saved_tensors
            gz = dout * f1(y, z)
            a = vx @ W + x @ vW
            curv = {"right": dout * f2(y, z), "gauss-newton": 0 * y,
                    "ignores-dout": f2(y, z)}[hvp]
            rz = curv * a
            return rz @ W.T + gz @ vW.T, x.T @ rz + vx.T @ gz, f1(y, z) * a

    class Layer(torch.autograd.Function):
        @staticmethod
        def forward(x, W):
            return f(x @ W)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)
            ctx.save_for_forward(*inputs, output)

        @staticmethod
        def backward(ctx, dout):
            x, W = ctx.saved_tensors
            return Grad.apply(x, W, dout)

        @staticmethod
        def jvp(ctx, tx, tW):
            x, W, y = ctx.saved_tensors
            t = f1(y, x @ W) * (tx @ W + x @ tW)
            return {"right": t, "sign": -t, "factor-2": 2 * t}[jvp]

    return Layer.apply


def run(name, fn):
    try:
        print(f"{name}: {'passes' if fn() else 'returns False'}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: raises {type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]}")


torch.manual_seed(0)
x = (torch.rand(3, 4, dtype=torch.float64) * 2 - 1).requires_grad_()
W = (torch.rand(4, 5, dtype=torch.float64) * 2 - 1).requires_grad_()
for kind in ("right", "gauss-newton", "ignores-dout"):
    run(f"gradgradcheck, tanh, hvp {kind}",
        lambda kind=kind: gradgradcheck(layer(hvp=kind), (x, W)))
for kind in ("right", "sign", "factor-2"):
    run(f"gradcheck(check_forward_ad=True), tanh, jvp {kind}",
        lambda kind=kind: gradcheck(layer(jvp=kind), (x, W), check_forward_ad=True))
# float32 inputs
x32, W32 = (t.detach().float().requires_grad_() for t in (x, W))
run("gradgradcheck, tanh, float32 inputs, right", lambda: gradgradcheck(layer(), (x32, W32)))
# relu on a grid of quarters, with one exact zero of x W (a kink, where the gradient jumps)
xq = (torch.randint(-4, 5, (3, 4)).double() / 4).requires_grad_()
Wq = (torch.randint(-4, 5, (4, 5)).double() / 4).requires_grad_()
with torch.no_grad():
    xq[0] = torch.tensor([0.25, 0.25, 0.5, -0.5])
    Wq[:, 0] = torch.tensor([0.5, -0.5, 0.25, 0.25])
print("exact zeros in x W:", int(((xq @ Wq) == 0).sum()))
run("gradgradcheck, relu, right hvp, a zero of x W at the point",
    lambda: gradgradcheck(layer(act="relu"), (xq, Wq)))
run("gradcheck, relu, right gradient, a zero of x W at the point",
    lambda: gradcheck(layer(act="relu"), (xq, Wq)))


# The same relu layer at the same point through handgrad.

x_np, W_np = xq.detach().numpy().copy(), Wq.detach().numpy().copy()
at_kink = dataclasses.replace(linear_records.RELU, name="relu-at-a-zero-of-xW",
                              samplers={"x": lambda rng, shape, dims: x_np.copy(),
                                        "w": lambda rng, shape, dims: W_np.copy()})
rows = [r for r in check_case(at_kink, Case.of({"N": 3, "D": 4, "M": 5}, 0))
        if r.dtype == "float64"]
print("handgrad, relu, right jvp/hvp, a zero of x W at the point:",
      "fails" if any(r.status == "fail" for r in rows) else "passes",
      sorted({f"{r.check}: {r.status}" for r in rows if r.status != "pass"}))
assert np.array_equal(x_np @ W_np == 0, (xq @ Wq == 0).detach().numpy())
