"""The Gauss-Newton-vector product of the MLP's softmax cross-entropy in PyTorch: the oracle's
program for ``derivations/mlp_gauss_newton.py``.

G = J^T H_L J + H_decay, with J the Jacobian of the scores a2 in (x, W1, b1, W2, b2), H_L the
Hessian of the summed cross-entropy in a2 and H_decay that of the weight decay. Each factor is a
torch.func transform of the plain forward (``reference/mlp.py``): J v by ``jvp``, H_L (J v) by
``jvp`` of ``grad``, J^T (.) by ``vjp``. Nothing here knows the softmax's Hessian in closed form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference import mlp

NAMES = ("x", "W1", "b1", "W2", "b2")


def gauss_newton_product(tensors, dout, v, *, f1: str, lam: float) -> dict[str, torch.Tensor]:
    """G v for S = dout * L, keyed like v."""
    params = tuple(tensors[k].detach() for k in NAMES)
    labels = tensors["y"].long()

    def scores(*p):
        _, named = mlp.loss(p[0], labels, *p[1:], loss="ce", f1=f1, f2="identity", lam=0.0)
        return named["a2"]

    def cross_entropy(a2):
        return F.cross_entropy(a2, labels, reduction="sum")

    def weight_decay(W1, W2):
        return 0.5 * lam * (W1.pow(2).sum() + W2.pow(2).sum())

    a2, Jv = torch.func.jvp(scores, params, tuple(v[k].detach() for k in NAMES))
    _, HJv = torch.func.jvp(torch.func.grad(cross_entropy), (a2,), (Jv,))
    _, pull_back = torch.func.vjp(scores, *params)
    product = dict(zip(NAMES, pull_back(dout * HJv)))
    _, decay_v = torch.func.jvp(torch.func.grad(weight_decay, argnums=(0, 1)),
                                (params[1], params[3]), (v["W1"].detach(), v["W2"].detach()))
    product["W1"] = product["W1"] + dout * decay_v[0]
    product["W2"] = product["W2"] + dout * decay_v[1]
    return product
