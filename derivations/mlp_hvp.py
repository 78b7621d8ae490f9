"""The MLP's Hessian-vector product by Pearlmutter's R-operator: see ``mlp_hvp.md``.

The forward, the cache and the backward are ``mlp.py``'s: x (N, d), W1 (M, d), b1 (M,),
W2 (C, M), b2 (C,). A tangent (the R-operator's R{v}, written v_dot) has the shape of v; ``dv`` is
dS/dv for S = dout * L, as in ``mlp.py``, and ``dv_dot`` its tangent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from derivations import mlp
from handgrad import Derivation

PARAMETERS = ("x", "W1", "b1", "W2", "b2")


def _sigmoid_second(a: np.ndarray, fa: np.ndarray) -> np.ndarray:
    return fa * (1.0 - fa) * (1.0 - 2.0 * fa)


# f'' through the pre-activation a and the value f(a), as mlp.ACTIVATIONS gives f'. relu'' is 0
# wherever relu' exists (a != 0).
SECOND_DERIVATIVES = {
    "sigmoid": _sigmoid_second,
    "tanh": lambda a, fa: -2.0 * fa * (1.0 - fa * fa),
    "relu": lambda a, fa: np.zeros_like(a),
    "identity": lambda a, fa: np.zeros_like(a),
}


@dataclass
class Tangents:
    """The tangents of the forward's intermediates along v: (N, M), (N, M), (N, C)."""

    a1: np.ndarray
    z: np.ndarray
    a2: np.ndarray


def forward_tangents(v: Mapping[str, np.ndarray], c: mlp.Cache) -> Tangents:
    """R{.} of the forward (MH1)-(MH3)."""
    a1_dot = v["x"] @ c.W1.T + c.x @ v["W1"].T + v["b1"]               # (MH1)
    z_dot = mlp.ACTIVATIONS[c.f1][1](c.a1, c.z) * a1_dot               # (MH2)
    a2_dot = z_dot @ c.W2.T + c.z @ v["W2"].T + v["b2"]                # (MH3)
    return Tangents(a1_dot, z_dot, a2_dot)


def output_curvature(dout, a2_dot: np.ndarray, c: mlp.Cache) -> np.ndarray:
    """The tangent of da2 through the loss and the output map alone (a2's own tangent only)."""
    if c.loss == "ce":
        p_dot = c.yhat * (a2_dot - (c.yhat * a2_dot).sum(axis=1, keepdims=True))
        return dout * p_dot                                            # (MH4)
    slope = mlp.ACTIVATIONS[c.f2][1](c.a2, c.yhat)
    return dout * slope * slope * a2_dot                               # (MH4')


def hvp(dout, v: Mapping[str, np.ndarray], c: mlp.Cache, *,
        second_derivatives: Mapping = SECOND_DERIVATIVES) -> dict[str, np.ndarray]:
    """H v for S = dout * L, keyed like v; ``second_derivatives`` gives f'' (a mistake swaps it).

    The backward (M6)-(M14) run again with every line differentiated along v: each product
    gives one term per factor that depends on the point.
    """
    t = forward_tangents(v, c)
    grads = mlp.backward(dout, c)
    da2, dz, da1 = grads["a2"], grads["z"], grads["a1"]
    da2_dot = output_curvature(dout, t.a2, c)
    if c.loss == "l2":
        dyhat = grads["yhat"]
        da2_dot = da2_dot + dyhat * second_derivatives[c.f2](c.a2, c.yhat) * t.a2  # (MH4')
    dW2_dot = da2_dot.T @ c.z + da2.T @ t.z + dout * c.lam * v["W2"]   # (MH5)
    db2_dot = da2_dot.sum(axis=0)                                      # (MH6)
    dz_dot = da2_dot @ c.W2 + da2 @ v["W2"]                            # (MH7)
    slope = mlp.ACTIVATIONS[c.f1][1](c.a1, c.z)
    curvature = second_derivatives[c.f1](c.a1, c.z)
    da1_dot = dz_dot * slope + dz * curvature * t.a1                   # (MH8)
    dW1_dot = da1_dot.T @ c.x + da1.T @ v["x"] + dout * c.lam * v["W1"]  # (MH9)
    db1_dot = da1_dot.sum(axis=0)                                      # (MH10)
    dx_dot = da1_dot @ c.W1 + da1 @ v["W1"]                            # (MH11)
    return {"x": dx_dot, "W1": dW1_dot, "b1": db1_dot, "W2": dW2_dot, "b2": db2_dot}


def parameter_gradients(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """``mlp.backward``'s gradients of the inputs (the hvp records name no intermediate)."""
    grads = mlp.backward(dout, c)
    return {k: grads[k] for k in PARAMETERS}


TAGS = {"W2": "MH5", "b2": "MH6", "W1": "MH9", "b1": "MH10", "x": "MH11"}
HVP_BENCH = ({"N": 64, "d": 784, "M": 256, "C": 10},)


def make(loss_name: str, f1: str, name: str = "", **changes) -> Derivation:
    """The HVP record of one variant of ``mlp.py``; ``changes`` overrides record fields."""
    return mlp.make(loss_name, f1, **{
        "name": name or f"mlp-hvp-{loss_name}-{f1}",
        "backward": parameter_gradients,
        "hvp": hvp,
        "equations": None,  # this page's equations, not the MLP page's
        "intermediates": (),
        "intermediate_shapes": {},
        "tags": TAGS,
        "variant": {"loss": loss_name, "f1": f1, "product": "Hessian (R-operator)"},
        "source": "",
        "bench": HVP_BENCH if (loss_name, f1) == ("ce", "tanh") else (),
        "flops": None,
        **changes})


def hvp_without_activation_curvature(dout, v, c: mlp.Cache) -> dict[str, np.ndarray]:
    """(MH8) and (MH4') with f'' taken as 0: the activations treated as locally linear."""
    flat = {k: (lambda a, fa: np.zeros_like(a)) for k in SECOND_DERIVATIVES}
    return hvp(dout, v, c, second_derivatives=flat)


def hvp_gradient_of_quadratic_form(dout, v, c: mlp.Cache) -> dict[str, np.ndarray]:
    """The gradient of v^T H v with respect to v, 2 H v, reported as H v."""
    return {k: 2.0 * hv for k, hv in hvp(dout, v, c).items()}


def hvp_taylor_coefficient(dout, v, c: mlp.Cache) -> dict[str, np.ndarray]:
    """The coefficient of eps^2 in S(p + eps v), (1/2) v^T H v, read as v^T H v: (1/2) H v."""
    return {k: 0.5 * hv for k, hv in hvp(dout, v, c).items()}


def mistake(name: str, text: str, kind: str, hvp_fn, loss_name: str = "ce",
            f1: str = "tanh") -> Derivation:
    return make(loss_name, f1, name=f"mlp-hvp-mistake-{name}", expect="reject", erratum=text,
                expect_kind=kind, hvp=hvp_fn, dims=mlp.NONDEGENERATE_DIMS, bench=())


MISTAKES = [
    mistake("activation-curvature-dropped", "(MH8) da1_dot = dz_dot f1'(a1), without "
            "dz f1''(a1) a1_dot", "values", hvp_without_activation_curvature),
    mistake("output-curvature-dropped", "(MH4') da2_dot = dout f2'(a2)^2 a2_dot, without "
            "dyhat f2''(a2) a2_dot", "values", hvp_without_activation_curvature,
            loss_name="l2sig", f1="relu"),
    mistake("factor-2", "H v taken as the gradient of v^T H v, which is 2 H v", "factor",
            hvp_gradient_of_quadratic_form, f1="sigmoid"),
    mistake("factor-half", "H v read off S(p + eps v) = S + eps g.v + (eps^2/2) v^T H v as the "
            "coefficient of eps^2, which is (1/2) H v", "factor", hvp_taylor_coefficient),
]

RECORDS = [*(make(loss, f1) for loss in mlp.LOSSES for f1 in ("sigmoid", "tanh", "relu")),
           *MISTAKES]
