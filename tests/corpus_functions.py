"""Custom autograd Functions written from scratch here in the styles found in the wild:
setup_context with a jvp, ctx attributes, two outputs and a float argument, once_differentiable,
mark_non_differentiable, needs_input_grad; and the mistakes gradcheck does not see.

``RIGHT`` and ``WRONG`` are records; each wrong one says which kind it must be rejected with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from handgrad import adapt

SMALL = {"N": (1, 4), "D": (1, 5)}


class TanhGelu(torch.autograd.Function):
    """GELU, tanh approximation, in the setup_context style with a forward-mode rule."""

    C = math.sqrt(2.0 / math.pi)

    @staticmethod
    def forward(x):
        return 0.5 * x * (1.0 + torch.tanh(TanhGelu.C * (x + 0.044715 * x**3)))

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def _slope(x):
        u = TanhGelu.C * (x + 0.044715 * x**3)
        t = torch.tanh(u)
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * TanhGelu.C * (1.0 + 3 * 0.044715 * x * x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * TanhGelu._slope(x)

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x_t * TanhGelu._slope(x)


class ScaledProductAndSum(torch.autograd.Function):
    """Two outputs and a non-tensor argument in the middle: (alpha a b, a + b)."""

    @staticmethod
    def forward(ctx, a, alpha, b):
        ctx.alpha = alpha
        ctx.save_for_backward(a, b)
        return alpha * a * b, a + b

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        a, b = ctx.saved_tensors
        return ctx.alpha * g_prod * b + g_sum, None, ctx.alpha * g_prod * a + g_sum


class Softplus(torch.autograd.Function):
    """log(1 + e^x) with a backward that is not meant to be differentiated again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.softplus(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


class RowMax(torch.autograd.Function):
    """The maximum of each row and where it is; the indices are not differentiable."""

    @staticmethod
    def forward(ctx, x):
        values, index = x.max(dim=1)
        ctx.mark_non_differentiable(index)
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return values, index

    @staticmethod
    def backward(ctx, g_values, g_index):
        (index,) = ctx.saved_tensors
        grad = g_values.new_zeros(ctx.shape)
        grad.scatter_(1, index.unsqueeze(1), g_values.unsqueeze(1))
        return grad


class MaskedAffine(torch.autograd.Function):
    """mask * (x @ W) + b, skipping what autograd does not need, as the PyTorch docs advise."""

    @staticmethod
    def forward(ctx, x, W, b, mask):
        ctx.save_for_backward(x, W, mask)
        return mask * (x @ W) + b

    @staticmethod
    def backward(ctx, g):
        x, W, mask = ctx.saved_tensors
        gm = g * mask
        dx = gm @ W.T if ctx.needs_input_grad[0] else None
        dW = x.T @ gm if ctx.needs_input_grad[1] else None
        db = g.sum(0) if ctx.needs_input_grad[2] else None
        return dx, dW, db, None


class CubeInNumpyOnce(torch.autograd.Function):
    """x^3 with a NumPy backward, marked once_differentiable as it should be."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.from_numpy(3.0 * x.numpy() ** 2 * g.numpy())


def _affine_reference(x, W, b, mask):
    return mask * (x @ W) + b


def _bernoulli(rng, shape, dims):
    return (rng.uniform(size=shape) < 0.7).astype(float)


RIGHT = [
    adapt.function("fn-gelu", TanhGelu, shapes="x: N D", dims=SMALL,
                   reference=lambda x: F.gelu(x, approximate="tanh")),
    adapt.function("fn-scaled-pair", ScaledProductAndSum, shapes="a: N D, b: N D", dims=SMALL,
                   call=lambda a, b: (a, 0.75, b), outputs="prod: N D, total: N D",
                   reference=lambda a, b: (0.75 * a * b, a + b)),
    adapt.function("fn-softplus", Softplus, shapes="x: N D", dims=SMALL, reference=F.softplus),
    adapt.function("fn-rowmax", RowMax, shapes="x: N D", dims=SMALL, outputs="values: N",
                   nondiff_outputs=(1,), reference=lambda x: x.max(dim=1).values),
    adapt.function("fn-cube-numpy", CubeInNumpyOnce, shapes="x: N D", dims=SMALL,
                   reference=lambda x: x**3, low_precision=("float16",)),
    adapt.function("fn-masked-affine", MaskedAffine, shapes="x: N D, W: D M, b: M, mask: N M",
                   dims={**SMALL, "M": (1, 3)}, nondiff={"mask"},
                   samplers={"mask": _bernoulli}, reference=_affine_reference),
]


class ViewedUpstream(torch.autograd.Function):
    """x W for a batch of sequences, with a backward that flattens grad_output with .view
    (fine while it is contiguous)."""

    @staticmethod
    def forward(ctx, x, W):
        ctx.save_for_backward(x, W)
        return x @ W

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        rows = g.view(-1, g.shape[-1])
        dx = (rows @ W.T).view(x.shape)
        return dx, x.reshape(-1, x.shape[-1]).T @ rows


class ScalesSavedInPlace(torch.autograd.Function):
    """exp(x), whose backward scales the saved output in place to save memory."""

    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y.mul_(g)


class DoublesUpstreamInPlace(torch.autograd.Function):
    """2 x, with the upstream gradient doubled in place."""

    @staticmethod
    def forward(ctx, x):
        return 2.0 * x

    @staticmethod
    def backward(ctx, g):
        return g.mul_(2.0)


class SkipsBiasTermWhenFrozen(torch.autograd.Function):
    """x * w + x: the backward drops the '+ 1' of dx whenever w does not need a gradient."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w + x

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            return g * (w + 1.0), g * x
        return g * w, None


class SavesIntermediate(torch.autograd.Function):
    """x e^x, saving e^x (neither input nor output): pytorch issue 104040."""

    @staticmethod
    def forward(ctx, x):
        e = x.exp()
        ctx.save_for_backward(x, e)
        return x * e

    @staticmethod
    def backward(ctx, g):
        x, e = ctx.saved_tensors
        return g * e * (1.0 + x)


class SignSlip(torch.autograd.Function):
    """sin(x) with the derivative's sign lost."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g * x.cos()


class NoisyBackward(torch.autograd.Function):
    """x^2 with a randomly dithered backward ("stochastic rounding"), unseeded."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2.0 * x * g * (1.0 + 1e-3 * torch.rand_like(g))


class CubeInNumpy(torch.autograd.Function):
    """x^3 with a NumPy backward, right in the first order, not marked once_differentiable."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.from_numpy(3.0 * x.detach().numpy() ** 2 * g.detach().numpy())


SHAPES = "x: N D, W: D M"
MATRIX = {**SMALL, "M": (1, 3)}
WRONG = [
    adapt.function("fn-viewed-upstream", ViewedUpstream, shapes="x: N T D, W: D M",
                   dims={**MATRIX, "T": (2, 3)},
                   reference=lambda x, W: x @ W, expect="reject", expect_kind="upstream-layout",
                   erratum="grad_output.view(...) raises on a transposed upstream gradient"),
    adapt.function("fn-scales-saved", ScalesSavedInPlace, shapes="x: N D", dims=SMALL,
                   reference=torch.exp, expect="reject", expect_kind="mutated-cache",
                   erratum="backward writes into the saved output (y.mul_(g))"),
    adapt.function("fn-doubles-upstream", DoublesUpstreamInPlace, shapes="x: N D", dims=SMALL,
                   reference=lambda x: 2.0 * x, expect="reject", expect_kind="mutated-upstream",
                   erratum="backward writes into grad_output (g.mul_(2))"),
    adapt.function("fn-frozen-weight", SkipsBiasTermWhenFrozen, shapes="x: N D, w: N D",
                   dims=SMALL, reference=lambda x, w: x * w + x, expect="reject",
                   expect_kind="requires-grad",
                   erratum="dx depends on whether w requires grad"),
    adapt.function("fn-saves-intermediate", SavesIntermediate, shapes="x: N D", dims=SMALL,
                   reference=lambda x: x * x.exp(), expect="reject",
                   expect_kind="saved-intermediate",
                   erratum="saves e^x computed in forward: a constant to the double backward"),
    adapt.function("fn-noisy", NoisyBackward, shapes="x: N D", dims=SMALL,
                   reference=lambda x: x * x, expect="reject", expect_kind="nondeterministic",
                   erratum="unseeded noise in backward: two calls differ"),
    adapt.function("fn-numpy-backward", CubeInNumpy, shapes="x: N D", dims=SMALL,
                   reference=lambda x: x**3, low_precision=("float16",), expect="reject",
                   expect_kind="not-differentiable",
                   erratum="a NumPy backward not marked once_differentiable: its double "
                           "backward is silently zero"),
    adapt.function("fn-sign", SignSlip, shapes="x: N D", dims=SMALL, reference=torch.sin,
                   expect="reject", expect_kind="sign", erratum="d sin = -cos"),
]
