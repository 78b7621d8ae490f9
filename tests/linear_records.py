"""Small records with hand JVPs and HVPs, written here from scratch in other people's styles (a
stateful layer class, per-row loops with odd names, module globals, a record without reference),
and wrong variants of them, for the tests of the jvp/hvp oracles."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

import handgrad

# --- a tanh layer as a stateful class, the way course code writes layers --------------------


class TanhDense:
    """y = tanh(x W + b); x (N, D), W (D, M), b (M,)."""

    def forward(self, x, W, b):
        self.x, self.W = x, W
        self.z = x @ W + b
        self.y = np.tanh(self.z)
        return self.y, self

    def backward(self, dout, me):
        dz = dout * (1 - me.y ** 2)
        return {"x": dz @ me.W.T, "W": me.x.T @ dz, "b": dz.sum(axis=0)}

    def jvp(self, t, me):
        dz = t["x"] @ me.W + me.x @ t["W"] + t["b"]
        return (1 - me.y ** 2) * dz, {"z": dz}

    def hvp(self, dout, v, me):
        rz = v["x"] @ me.W + me.x @ v["W"] + v["b"]
        gz = dout * (1 - me.y ** 2)
        rgz = dout * (-2 * me.y * (1 - me.y ** 2)) * rz  # the tanh'' term
        return {"x": rgz @ me.W.T + gz @ v["W"].T, "W": v["x"].T @ gz + me.x.T @ rgz,
                "b": rgz.sum(axis=0)}


def _tanh_reference(x, W, b):
    z = x @ W + b
    return torch.tanh(z), {"z": z}


_layer = TanhDense()
TANH = handgrad.Derivation(
    name="lin-tanh-dense", forward=_layer.forward, backward=_layer.backward,
    reference=_tanh_reference, inputs="x: N D, W: D M, b: M", dims={"N": (2, 4), "D": (2, 4),
                                                                    "M": (2, 5)},
    jvp=_layer.jvp, jvp_intermediates=("z",), hvp=_layer.hvp, complex_step=True,
    tags={"z": "T1"})

# --- softmax cross-entropy of a linear map, per-row loops with odd names ---------------------


def ce_fwd(X, Wt, lab):
    """mean_n -log softmax(X Wt)[n, lab[n]]; X (N, D), Wt (D, C), lab (N,)."""
    N = X.shape[0]
    S = X @ Wt
    P = np.empty_like(S)
    tot = 0.0
    for n in range(N):
        e = np.exp(S[n])  # inputs in [-1, 1): no max shift needed, and it stays holomorphic
        P[n] = e / e.sum()
        tot = tot - np.log(P[n, lab[n]])
    return tot / N, (X, Wt, lab, P)


def ce_bwd(dL, c):
    X, Wt, lab, P = c
    N = X.shape[0]
    G = P.copy()
    for n in range(N):
        G[n, lab[n]] -= 1.0
    G = G * (dL / N)
    return {"X": G @ Wt.T, "Wt": X.T @ G}


def ce_jvp(t, c):
    X, Wt, lab, P = c
    N = X.shape[0]
    dS = t["X"] @ Wt + X @ t["Wt"]
    acc = 0.0
    for n in range(N):
        acc = acc + P[n] @ dS[n] - dS[n, lab[n]]
    return np.asarray(acc / N)


def ce_hvp(dL, v, c):
    X, Wt, lab, P = c
    N = X.shape[0]
    G = P.copy()
    for n in range(N):
        G[n, lab[n]] -= 1.0
    G = G * (dL / N)
    dS = v["X"] @ Wt + X @ v["Wt"]
    RG = np.empty_like(P)
    for n in range(N):
        RG[n] = (P[n] * dS[n] - P[n] * (P[n] @ dS[n])) * (dL / N)
    return {"X": RG @ Wt.T + G @ v["Wt"].T, "Wt": v["X"].T @ G + X.T @ RG}


def _ce_reference(X, Wt, lab):
    return torch.nn.functional.cross_entropy(X @ Wt, lab)


def _labels(rng, shape, dims):
    return rng.integers(0, dims["C"], size=shape)


CE = handgrad.Derivation(
    name="lin-softmax-ce", forward=ce_fwd, backward=ce_bwd, reference=_ce_reference,
    inputs="X: N D, Wt: D C, lab: N", dims={"N": (2, 4), "D": (2, 4), "C": (2, 5)},
    nondiff={"lab"}, samplers={"lab": _labels}, jvp=ce_jvp, hvp=ce_hvp, complex_step=True,
    output=())

# --- a relu layer through module globals: its Hessian has only cross terms -------------------

LAST = {}


def relu_fwd(x, w):
    LAST["x"], LAST["w"] = x, w
    LAST["z"] = x @ w
    return np.maximum(LAST["z"], 0), dict(LAST)


def relu_bwd(dout, c):
    gz = dout * (c["z"] > 0)
    return {"x": gz @ c["w"].T, "w": c["x"].T @ gz}


def relu_jvp(t, c):
    return (c["z"] > 0) * (t["x"] @ c["w"] + c["x"] @ t["w"])


def relu_hvp(dout, v, c):
    gz = dout * (c["z"] > 0)  # relu'' = 0 almost everywhere: only the cross terms remain
    return {"x": gz @ v["w"].T, "w": v["x"].T @ gz}


RELU = handgrad.Derivation(
    name="lin-relu-dense", forward=relu_fwd, backward=relu_bwd,
    reference=lambda x, w: torch.relu(x @ w), inputs="x: N D, w: D M",
    dims={"N": (2, 4), "D": (2, 4), "M": (2, 5)}, jvp=relu_jvp, hvp=relu_hvp)

# --- an elementwise relu, no declared kinks: its Hessian is zero almost everywhere -----------

RELU_ELEMENTWISE = handgrad.Derivation(
    name="lin-relu", forward=lambda x: (np.maximum(x, 0), x),
    backward=lambda dout, x: {"x": dout * (x > 0)},
    reference=lambda x: torch.relu(x), inputs="x: N M", dims={"N": (2, 5), "M": (2, 5)},
    jvp=lambda t, x: t["x"] * (x > 0), hvp=lambda dout, v, x: {"x": np.zeros_like(x)},
    zero_grads={})

# --- the tanh layer again, without a reference ------------------------------------------------

TANH_NO_REFERENCE = dataclasses.replace(TANH, name="lin-tanh-dense-no-reference",
                                        reference=None)

RIGHT = (TANH, CE, RELU, RELU_ELEMENTWISE, TANH_NO_REFERENCE)


# --- wrong variants ---------------------------------------------------------------------------


def _wrong(record, name, erratum, kind, **fields):
    return dataclasses.replace(record, name=f"{record.name}-{name}", expect="reject",
                               erratum=erratum, expect_kind=kind, **fields)


def _tanh_hvp_gauss_newton(dout, v, me):
    """The tanh'' term dropped: the Gauss-Newton part only."""
    gz = dout * (1 - me.y ** 2)
    return {"x": gz @ v["W"].T, "W": v["x"].T @ gz, "b": np.zeros_like(v["b"])}


def _tanh_hvp_ignores_dout(dout, v, me):
    return _layer.hvp(np.ones_like(me.y), v, me)


def _tanh_jvp_sign(t, me):
    out, inter = _layer.jvp(t, me)
    return -out, {"z": -inter["z"]}


def _tanh_jvp_point_for_tangent(t, me):
    """x W where t_x W is due (the point where the direction belongs): not linear in t."""
    dz = me.x @ me.W + me.x @ t["W"] + t["b"]
    return (1 - me.y ** 2) * dz, {"z": dz}


def _tanh_hvp_one_sided_cross(dout, v, me):
    """The cross term d2S/dx dW kept in dW only: not symmetric."""
    hv = _layer.hvp(dout, v, me)
    gz = dout * (1 - me.y ** 2)
    return {**hv, "x": hv["x"] - gz @ v["W"].T}


def _ce_hvp_double(dL, v, c):
    return {k: 2 * h for k, h in ce_hvp(dL, v, c).items()}


def _relu_hvp_nonzero(dout, v, x):
    return {"x": dout * v["x"]}


WRONG = (
    _wrong(TANH, "jvp-sign", "the jvp's sign flipped", "sign", jvp=_tanh_jvp_sign),
    _wrong(TANH, "hvp-gauss-newton", "the tanh'' term dropped from the hvp", "values",
           hvp=_tanh_hvp_gauss_newton),
    _wrong(TANH, "hvp-ignores-dout", "the hvp written for dout = 1", "values",
           hvp=_tanh_hvp_ignores_dout),
    _wrong(TANH, "jvp-nonlinear", "x W where t_x W is due", "values",
           jvp=_tanh_jvp_point_for_tangent),
    _wrong(TANH, "hvp-asymmetric", "a cross term kept on one side", "values",
           hvp=_tanh_hvp_one_sided_cross),
    _wrong(CE, "hvp-factor-2", "the hvp doubled", "factor", hvp=_ce_hvp_double),
    _wrong(RELU_ELEMENTWISE, "hvp-nonzero", "relu'' taken as 1", "nonzero-where-zero",
           hvp=_relu_hvp_nonzero),
)


def _tanh_jvp_output_wrong(t, me):
    """dz right, the tanh' factor squared on the way out."""
    _, inter = _layer.jvp(t, me)
    return (1 - me.y ** 2) ** 2 * inter["z"], inter


WRONG += (_wrong(TANH, "jvp-output-step", "tanh' squared in the output tangent", "values",
                 jvp=_tanh_jvp_output_wrong),)
