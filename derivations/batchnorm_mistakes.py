"""Mistakes people make deriving the batch-norm backward by hand: each must be caught and
diagnosed (``expect_kind``). The engine's generic operators live in handgrad/mutations.py.

``handgrad check batchnorm-mistake`` shows each rejected: ``values`` for the dropped mean and
variance paths, for the unbiased variance in the backward (on the spatial record) and in the
forward (where the forward fails too), ``wrong-shape`` for parameter gradients not reduced ("a
reduction over axis 0 is missing")."""

from __future__ import annotations

from functools import partial

import numpy as np

from derivations import batchnorm
from derivations.batchnorm import Cache


def mean_path_dropped(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(B12) without dL/dmu / m: the mean treated as a constant, so neither its direct term nor
    its term through the variance reaches x. The record does not ask for dL/dmu."""
    s = batchnorm.staged(dy, c)
    dx = s["xhat"] * c.inv_std + s["var"] * (2.0 / c.m) * c.xc
    kept = {"xhat": s["xhat"], "var": s["var"]}
    return {**batchnorm.squeezed(kept), **batchnorm.parameter_grads(dy, c), "x": dx}


def variance_path_dropped(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(B12) without the variance's term: sigma treated as a constant, and dL/dmu keeps only its
    direct term. The record does not ask for dL/dvar."""
    dxhat = dy * c.gamma
    dmu = -dxhat.sum(axis=c.axes, keepdims=True) * c.inv_std
    dx = dxhat * c.inv_std + dmu / c.m
    return {"xhat": dxhat, "mu": dmu.reshape(-1), **batchnorm.parameter_grads(dy, c), "x": dx}


def unbiased_in_backward(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(B12) with d var / d x = 2 (x - mu) / (m - 1), the unbiased variance's derivative, where
    the forward divides by m."""
    s = batchnorm.staged(dy, c)
    dx = batchnorm.dx_staged(s, c, var_divisor=c.m - 1)
    return {**batchnorm.squeezed(s), **batchnorm.parameter_grads(dy, c), "x": dx}


def parameters_not_reduced(dy: np.ndarray, c: Cache) -> dict[str, np.ndarray]:
    """(B7), (B8) without the sum over the batch: dL/dbeta = dy, dL/dgamma = dy * xhat."""
    return {**batchnorm.backward(dy, c), "beta": dy, "gamma": dy * c.xhat}


def staged_form(spatial: bool = False, without: str = "") -> dict:
    """Fields of a record whose dL/dx is the staged (B12), reporting every statistic's
    gradient but ``without``."""
    feature = ("C",) if spatial else ("D",)
    x = batchnorm.SPATIAL["x"] if spatial else batchnorm.FLAT["x"]
    shapes = {"xhat": x, "var": feature, "mu": feature}
    kept = tuple(k for k in shapes if k != without)
    return {"intermediates": kept, "intermediate_shapes": {k: shapes[k] for k in kept},
            "tags": {**{k: v for k, v in batchnorm.TAGS.items() if k != without}, "x": "B12"}}


def mistake(name: str, text: str, kind: str, backward, spatial: bool = False, **changes):
    return batchnorm.make(spatial, name=f"batchnorm-mistake-{name}", backward=backward,
                          expect="reject", erratum=text, expect_kind=kind, bench=(), **changes)


RECORDS = [
    mistake("mean-path-dropped", "(B12) the mean treated as a constant: dL/dmu / m left out of "
            "dL/dx (its direct term and its term through the variance)", "offset",
            mean_path_dropped, **staged_form(without="mu")),
    mistake("variance-path-dropped", "(B12) the variance treated as a constant: the term "
            "dL/dvar 2 (x - mu) / m left out of dL/dx", "values", variance_path_dropped,
            **staged_form(without="var")),
    mistake("unbiased-in-backward", "(B12) the variance's derivative taken as 2 (x - mu) / "
            "(m - 1), the unbiased estimator's, while the forward divides by m", "values",
            unbiased_in_backward, spatial=True, **staged_form(spatial=True)),
    mistake("unbiased-in-forward", "(B3) the variance divided by m - 1 (np.var(ddof=1), "
            "torch.var's default) where batch norm in training divides by m", "values",
            batchnorm.backward, forward=partial(batchnorm.forward, correction=1),
            # Two features at least: with one, dL/dvar is a single number, and any two single
            # numbers differ by "a factor".
            dims={"N": (3, 6), "D": (2, 5)}),
    mistake("parameters-not-reduced", "(B7), (B8) dL/dbeta and dL/dgamma returned per sample, "
            "(N, D), not summed over the batch", "wrong-shape", parameters_not_reduced),
]
