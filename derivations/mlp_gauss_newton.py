"""The Gauss-Newton-vector product of softmax cross-entropy on the MLP (Martens' Hessian-free
optimisation): see ``mlp_gauss_newton.md``.

The forward, the cache and the backward are ``mlp.py``'s (cross-entropy records only); the
tangents of the forward are ``mlp_hvp.py``'s (MH1)-(MH3). ``hvp`` returns G v, not H v: the
record's ``hvp_reference`` computes J^T H_L J v with torch, and the checks that differentiate the
record's own backward (which would measure H) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from derivations import mlp, mlp_hvp
from handgrad import Derivation
from reference import mlp_gauss_newton as ref

NOT_THE_HESSIAN = "G is the Gauss-Newton matrix, not the Hessian: this check measures H v " \
    "through the record's own backward or forward, and G v differs from it wherever the " \
    "residual terms of H are not zero; hvp_reference (J^T H_L J v in torch) is the oracle"


def gauss_newton_product(dout, v: Mapping[str, np.ndarray], c: mlp.Cache,
                         *, coupling: float = 1.0, decay: float = 1.0) -> dict[str, np.ndarray]:
    """G v for S = dout * L, keyed like v. ``coupling`` and ``decay`` scale the -p p^T part of
    the softmax Hessian and the decay term: 1 is right, other values transcribe mistakes.

    ``da2_dot`` is the Markdown's a2-bar-dot, ``dz_gn`` and ``da1_gn`` its h-bar-G and a1-bar-G
    (the code keeps mlp.py's name z for the hidden activation h).
    """
    a2_dot = mlp_hvp.forward_tangents(v, c).a2                       # (GN1) J v
    p = c.yhat
    da2_dot = dout * p * (a2_dot - coupling * (p * a2_dot).sum(axis=1, keepdims=True))  # (GN2)
    GW2 = da2_dot.T @ c.z + decay * dout * c.lam * v["W2"]           # (GN3)
    Gb2 = da2_dot.sum(axis=0)                                        # (GN4)
    dz_gn = da2_dot @ c.W2                                           # (GN5)
    da1_gn = dz_gn * mlp.ACTIVATIONS[c.f1][1](c.a1, c.z)             # (GN5)
    GW1 = da1_gn.T @ c.x + decay * dout * c.lam * v["W1"]            # (GN6)
    Gb1 = da1_gn.sum(axis=0)                                         # (GN7)
    Gx = da1_gn @ c.W1                                               # (GN8)
    return {"x": Gx, "W1": GW1, "b1": Gb1, "W2": GW2, "b2": Gb2}


TAGS = {"W2": "GN3", "b2": "GN4", "W1": "GN6", "b1": "GN7", "x": "GN8"}


def make(f1: str, name: str = "", **changes) -> Derivation:
    """The Gauss-Newton record with hidden activation f1; ``changes`` overrides record fields."""
    return mlp_hvp.make("ce", f1, **{
        "name": name or f"mlp-gn-ce-{f1}",
        "hvp": gauss_newton_product,
        "hvp_reference": partial(ref.gauss_newton_product, f1=f1, lam=mlp.LAM),
        "skip": {"hvp-fd": NOT_THE_HESSIAN, "taylor2": NOT_THE_HESSIAN},
        "tags": TAGS,
        "variant": {"loss": "ce", "f1": f1, "product": "Gauss-Newton (J^T H_L J)"},
        "bench": mlp_hvp.HVP_BENCH if f1 == "tanh" else (),
        **changes})


def mistake(name: str, text: str, kind: str, hvp_fn, **changes) -> Derivation:
    return make("tanh", name=f"mlp-gn-mistake-{name}", expect="reject", erratum=text,
                expect_kind=kind, hvp=hvp_fn, dims=mlp.NONDEGENERATE_DIMS, bench=(), **changes)


MISTAKES = [
    mistake("diagonal-softmax-hessian", "(GN2) a2_bar_dot = p * a2_dot: the softmax Hessian taken "
            "as diag(p), without -p p^T", "values", partial(gauss_newton_product, coupling=0.0)),
    mistake("decay-dropped", "(GN3) G W2 = a2_bar_dot^T z without lam W2_dot: the weight decay's "
            "curvature left out", "values", partial(gauss_newton_product, decay=0.0)),
    # Passing G v off as H v: the record checked against the Hessian (no hvp_reference, no
    # skips) must reject it; it is right only where the residual terms vanish.
    mlp_hvp.make("ce", "tanh", name="mlp-hvp-mistake-gauss-newton", expect="reject",
                 erratum="H v computed without the terms that carry a backpropagated gradient "
                         "((MH8)'s f1'' term, da2^T z_dot, da2 W2_dot, da1^T x_dot, "
                         "da1 W1_dot): the Gauss-Newton product G v",
                 expect_kind="values", hvp=gauss_newton_product, dims=mlp.NONDEGENERATE_DIMS,
                 bench=(), doc="derivations/mlp_hvp.md"),
]

RECORDS = [*(make(f1) for f1 in ("sigmoid", "tanh", "relu")), *MISTAKES]
