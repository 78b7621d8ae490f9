"""The LSTM in PyTorch: the oracle's program for ``derivations/lstm.py``.

Time-major: x (T, B, D), h0 (B, H), c0 (B, H), Wx (D, 4H), Wh (H, 4H), b (4H,) with the gates in
the order i, f, g, o (PyTorch's), Wy (H, C), by (C,); labels y (T, B) for cross-entropy, targets
y (T, B, C) for L2. The loss is summed over time and batch.

h_t and c_t are each used twice (by the output or h_t, and by the next step), so the totals
dL/dh_t and dL/dc_t are read off zero probes added where each is formed, as in
``reference/rnn.py``; likewise the gate pre-activations z_t and the gate values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def total_loss(x, y, h0, c0, Wx, Wh, b, Wy, by, *, loss: str):
    """L summed over time and batch, and the named intermediates a, h, c, gates, z."""
    T, B, _ = x.shape
    H = h0.shape[1]
    zero = torch.zeros((), dtype=x.dtype, requires_grad=True)
    probes = {"h": zero.expand(T, B, H), "c": zero.expand(T, B, H),
              "gates": zero.expand(T, B, 4 * H), "z": zero.expand(T, B, 4 * H)}
    per_step = {k: p.unbind(0) for k, p in probes.items()}
    from_input = torch.baddbmm(b, x, Wx.expand(T, *Wx.shape)).unbind(0)
    h, c = h0, c0
    hs = []
    steps = {k: [] for k in ("z_t", "zi_t", "zf_t", "zg_t", "zo_t", "i_t", "f_t", "g_t", "o_t",
                             "c_t")}
    for t in range(T):
        z = torch.addmm(from_input[t], h, Wh) + per_step["z"][t]
        z_i, z_f, z_g, z_o = z.chunk(4, dim=1)
        gates = torch.cat([torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g),
                           torch.sigmoid(z_o)], dim=1) + per_step["gates"][t]
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.addcmul(f * c, i, g) + per_step["c"][t]
        h = o * torch.tanh(c) + per_step["h"][t]
        hs.append(h)
        for k, v in zip(steps, (z, z_i, z_f, z_g, z_o, i, f, g, o, c)):
            steps[k].append(v)
    a = torch.stack(hs) @ Wy + by
    if loss == "ce":
        total = F.cross_entropy(a.flatten(0, 1), y.flatten().long(), reduction="sum")
    else:
        total = 0.5 * F.mse_loss(a, y, reduction="sum")
    # The steps themselves, for the page's equations (derivations/lstm.md): each is the tensor
    # every later use reads, so its gradient is the total one. L_t: the per-step losses.
    per_loss = (F.cross_entropy(a.flatten(0, 1), y.flatten().long(), reduction="none")
                .view(T, B).sum(1) if loss == "ce" else 0.5 * ((a - y) ** 2).sum(dim=(1, 2)))
    extra = {**steps, "h_t": hs, "L_t": per_loss}
    if loss == "ce":
        extra["yhat"] = torch.softmax(a, dim=2)
    return total, {"a": a, **probes, **extra}
