"""The vanilla RNN in PyTorch: the oracle's program for ``derivations/rnn.py`` and
``derivations/rnn_source.py``.

Time-major: x (T, B, D), h0 (B, M), U (M, M), W (M, D), b (M,), V (C, M), c (C,); labels
y (T, B) for cross-entropy, targets y (T, B, C) for L2. The loss is summed over time and batch.

The hidden state h_t is used twice (by the output and by the next step), so no stack of the
h_t built after the loop carries the total dL/dh_t. Zero probes do: ``probe_h[t]`` is added to
h_t where it is formed, so every use of h_t sees it and dS/d probe_h[t] = dS/dh_t exactly
(likewise ``probe_z`` for z_t). Adding zeros leaves every value unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def step_losses(x, y, h0, U, W, b, V, c, *, f: str, loss: str, window: int | None = None):
    """Per-step losses L_t summed over the batch, (T,), and the named intermediates.

    ``window`` = k truncates backpropagation: the sequence runs in chunks of k steps and the
    hidden state entering each chunk but the first is detached (h_k, h_2k, ...).
    """
    T, B, _ = x.shape
    M = U.shape[0]
    # Expanded scalars: no (T, B, M) memory unless their gradient is asked for.
    zero = torch.zeros((), dtype=x.dtype, requires_grad=True)
    probe_z, probe_h = zero.expand(T, B, M), zero.expand(T, B, M)
    # unbind, not x[t]: indexing one step at a time makes autograd build a zero (T, B, .)
    # gradient per step, quadratic in T.
    inputs = F.linear(x, W, b).unbind(0)
    probes_z, probes_h = probe_z.unbind(0), probe_h.unbind(0)
    h = h0
    hs, zs = [], []
    for t in range(T):
        if window is not None and t > 0 and t % window == 0:
            h = h.detach()
        z = F.linear(h, U) + inputs[t] + probes_z[t]
        h = ACTIVATIONS[f](z) + probes_h[t]
        hs.append(h)
        zs.append(z)
    a = F.linear(torch.stack(hs), V, c)
    if loss == "ce":
        per_step = -torch.log_softmax(a, dim=2).gather(2, y.long().unsqueeze(2)).sum(dim=(1, 2))
    else:
        per_step = 0.5 * ((a - y) ** 2).sum(dim=(1, 2))
    # The steps themselves, for the page's equations (derivations/rnn.md): each step's tensor
    # is the one every later use reads, so its gradient is the total one.
    inter = {"a": a, "h": probe_h, "z": probe_z, "h_t": hs, "z_t": zs}
    if loss == "ce":
        inter["yhat"] = torch.softmax(a, dim=2)
    return per_step, inter


def total_loss(x, y, h0, U, W, b, V, c, *, f: str, loss: str, window: int | None = None):
    """L = sum over t of L_t, and the named intermediates (``L_t``: the per-step losses)."""
    per_step, inter = step_losses(x, y, h0, U, W, b, V, c, f=f, loss=loss, window=window)
    return per_step.sum(), {**inter, "L_t": per_step}


def total_loss_w_transposed(x, y, h0, U, W, b, V, c, *, f: str, loss: str):
    """The same loss with W stored (D, M), the shape the source declares: z_t uses W^T x_t."""
    return total_loss(x, y, h0, U, W.T, b, V, c, f=f, loss=loss)
