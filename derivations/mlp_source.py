"""Section 2 of the source, transcribed as written where it changes a value.

Each record replaces one step of the correct derivation (``mlp.py``) with the source's version;
the harness must reject every one (``expect="reject"``); ``handgrad check mlp-source`` shows each
rejected. The table "Differences from the source" in ``mlp.md`` explains each; a record's
erratum text names the equation of its row. Where the source's product dL/dy_j f2'(.) is
ambiguous, ``softmax-diagonal`` reads it as the diagonal y_j (1 - y_j) of the softmax Jacobian,
and ``db2-sum-over-outputs`` as dL/da2_j, which sums to 0 over j under cross-entropy: that record
runs the L2 loss with f2 = sigmoid, where the sum over outputs shows.
"""

from __future__ import annotations

import numpy as np

from derivations import mlp


def dyhat_without_minus(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.4: dL/dy_j = y_nj / y_j, the minus sign of d(-log y)/dy dropped."""
    onehot = np.zeros_like(c.yhat)
    onehot[np.arange(len(c.target)), c.target] = 1.0
    dyhat = dout * onehot / c.yhat
    return {"yhat": dyhat, **mlp.backward_from_yhat(dout, dyhat, c)}


def softmax_as_elementwise(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.4: dL/dw_jk = dL/dy_j f2'(.) z_k treats softmax as elementwise: only the diagonal
    y_j (1 - y_j) of its Jacobian survives."""
    dyhat = mlp.dloss_dyhat(dout, c)
    da2 = dyhat * c.yhat * (1.0 - c.yhat)
    return {"yhat": dyhat, "a2": da2, **mlp.backward_from_a2(dout, da2, c)}


def dz_skips_output_derivative(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.4: dL/dz_k = sum_j dL/dy_j w_jk, the output nonlinearity's derivative skipped."""
    grads = mlp.backward(dout, c)
    dz = grads["yhat"] @ c.W2
    return {**grads, "z": dz, **mlp.backward_from_z(dout, dz, c)}


def db2_summed_over_outputs(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.4: dL/db_k^(2) = sum_j dL/dy_j f2'(.): one number, summed over every output j,
    for every bias entry."""
    grads = mlp.backward(dout, c)
    return {**grads, "b2": np.full_like(c.W2[:, 0], grads["a2"].sum())}


def db1_summed_over_hidden(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.4: dL/db_i^(1) = sum_k dL/dz_k f1'(.): summed over every hidden unit k."""
    grads = mlp.backward(dout, c)
    return {**grads, "b1": np.full_like(c.W1[:, 0], grads["a1"].sum())}


def decay_missing_from_gradient(dout, c: mlp.Cache) -> dict[str, np.ndarray]:
    """Source 2.2 puts (lam/2) tr(W^T W) in L, but the gradients of 2.4 omit lam W."""
    grads = mlp.backward(dout, c)
    return {**grads, "W1": grads["W1"] - dout * c.lam * c.W1,
            "W2": grads["W2"] - dout * c.lam * c.W2}


def source_update(params: dict, grads: dict, lr: float) -> dict:
    """Source 2.4: w <- w + eta dL/dw + lam w: a step up the gradient, plus an undamped decay."""
    return {k: params[k] + lr * grads[k] + (mlp.LAM * params[k] if k.startswith("W") else 0.0)
            for k in ("W1", "b1", "W2", "b2")}


def source_b2_update(params: dict, grads: dict, lr: float) -> dict:
    """Source 2.4: b_j^(2) <- b_j^(1) + eta dL/db_j^(1): the second bias updated from the first."""
    new = mlp.sgd_update(params, grads, lr)
    new["b2"] = params["b1"] - lr * grads["b1"]
    return new


def erratum(name: str, text: str, kind: str, loss: str = "ce", **changes):
    return mlp.make(loss, "tanh", name=f"mlp-source-{name}", expect="reject", erratum=text,
                    expect_kind=kind, dims=mlp.NONDEGENERATE_DIMS, bench=(), **changes)


# The two update errata leave expect_kind empty: only the descent check sees them (the engine
# calls both "values" there), and tests/test_mutations.py judges kinds on the gradient checks.
RECORDS = [
    erratum("dyhat-sign", "(M6) dL/dy = y/yhat, without the minus", "sign",
            backward=dyhat_without_minus),
    erratum("softmax-diagonal", "(M7) softmax differentiated as if elementwise: f2' = y(1-y)",
            "zero-entries", backward=softmax_as_elementwise),
    erratum("dz-no-output-derivative", "(M10) dL/dz = sum_j dL/dy_j w_jk, f2' skipped",
            "values", backward=dz_skips_output_derivative),
    # Under cross-entropy every row of dL/da2 = yhat - Y sums to 0, so the source's sum is 0
    # whatever the data: the error shows only with the L2 loss.
    erratum("db2-sum-over-outputs", "(M9) dL/db2_k = sum over all outputs j, with the L2 loss",
            "values", loss="l2sig", backward=db2_summed_over_outputs),
    erratum("db1-sum-over-hidden", "(M13) dL/db1_i = sum over all hidden units k", "values",
            backward=db1_summed_over_hidden),
    erratum("decay-missing", "(M8, M12) lam W missing from dL/dW although L holds the decay",
            "values", backward=decay_missing_from_gradient),
    erratum("update-ascent", "(M15) w <- w + eta dL/dw + lam w: ascent, decay not scaled by eta",
            "", update=source_update),
    erratum("update-b2-from-b1", "(M15) b2 <- b1 + eta dL/db1: the wrong layer's bias", "",
            update=source_b2_update),
]
