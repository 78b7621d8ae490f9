"""Mistakes people make deriving attention's backward by hand, transcribed: each must be rejected
with its diagnosis (``expect_kind``). See *Common mistakes* in ``attention.md``.

Every record keeps the right forward, so the forward check passes and the harness judges the
transcribed backward alone against the gradient of the right model. ``handgrad check
attention-mistake`` shows each rejected, with its kind on the first failing case: ``slices``
along T for the diagonal Jacobian (every query but the first) and for the mask after the softmax
(every query but the last), ``factor`` for the missing scale (sqrt(d) = 2.23607 at d = 5),
``values`` for dV from the unnormalised weights and for dx overwritten.
"""

from __future__ import annotations

import numpy as np

from derivations import attention


def diagonal_softmax_jacobian(dout, c: attention.Cache) -> dict[str, np.ndarray]:
    """(SA7) dscores = dP p (1 - p): the sigmoid's derivative, the diagonal of diag(p) - p p^T."""
    grads = attention.backward(dout, c)
    dscores = grads["P"] * c.P * (1.0 - c.P)
    return {**grads, "scores": dscores, **attention.score_backward(dscores, c)}


def scale_missing(dout, c: attention.Cache) -> dict[str, np.ndarray]:
    """(SA8), (SA9) dQ = dscores K and dK = dscores^T Q, without the forward's 1/sqrt(d)."""
    grads = attention.backward(dout, c)
    dscores = grads["scores"]
    return {**grads, "Q": dscores @ c.K, "K": dscores.swapaxes(1, 2) @ c.Q}


def softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def mask_after_softmax(dout, c: attention.Cache) -> dict[str, np.ndarray]:
    """The backward of P = mask * softmax(scores), the model of someone who masks after
    normalising, evaluated at the same inputs: the softmax over every key, and the mask on its
    output. The rows of that P no longer sum to 1."""
    grads = attention.backward(dout, c)
    unmasked = softmax(c.scores)
    P = np.where(c.allowed, unmasked, 0.0)
    dV = P.swapaxes(1, 2) @ dout                                       # (SA6) with that P
    dunmasked = np.where(c.allowed, grads["P"], 0.0)                   # the mask's backward
    dscores = attention.softmax_backward(dunmasked, unmasked)          # (SA7) over every key
    return {**grads, "scores": dscores, **attention.score_backward(dscores, c), "V": dV}


def values_from_exp_scores(dout, c: attention.Cache) -> dict[str, np.ndarray]:
    """(SA6) dV = E^T dout with E = exp(scores - row max), the softmax's numerator (the array a
    stable softmax holds just before dividing by its row sums), in place of P."""
    grads = attention.backward(dout, c)
    masked = np.where(c.allowed, c.scores, -np.inf)
    numerator = np.exp(masked - masked.max(axis=2, keepdims=True))
    return {**grads, "V": numerator.swapaxes(1, 2) @ dout}


def x_gradient_overwritten(dout, c: attention.Projected) -> dict[str, np.ndarray]:
    """(SA14) dx assigned once per path instead of summed: the last one, through V, stays."""
    grads = attention.backward_projected(dout, c)
    return {**grads, "x": grads["V"] @ c.Wv.T}


def mistake(name: str, text: str, kind: str, backward) -> attention.Derivation:
    return attention.make(f"attention-mistake-{name}", causal=True, expect="reject",
                          erratum=text, expect_kind=kind, backward=backward)


RECORDS = [
    mistake("diagonal-jacobian", "(SA7) the softmax Jacobian cut to its diagonal: dscores = "
            "dP P (1 - P), without the - P (P^T dP) coupling of each row", "slices",
            diagonal_softmax_jacobian),
    mistake("scale-missing", "(SA8), (SA9) the 1/sqrt(d) of the scores left out of dQ and dK",
            "factor", scale_missing),
    mistake("mask-after-softmax", "(SA2), (SA3) the mask applied after the softmax: the backward "
            "of P = mask * softmax(scores), whose rows do not sum to 1", "slices",
            mask_after_softmax),
    mistake("dv-from-exp-scores", "(SA6) dV from the unnormalised exp(scores - row max) "
            "instead of P", "values", values_from_exp_scores),
    attention.make_projected("attention-mistake-dx-overwritten", expect="reject",
                             erratum="(SA14) dx assigned per path instead of summed over the "
                             "three uses of x: only the value path's x_V Wv^T stays",
                             expect_kind="values", backward=x_gradient_overwritten),
]
