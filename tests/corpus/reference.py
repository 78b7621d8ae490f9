"""Independent PyTorch programs for the corpus: torch ops, written from each layer's definition,
never from the NumPy code they check. Each takes torch tensors by input name (the adapters move
them into the layout a reference states)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def affine(x, w, b):
    """x: (N, d1, ..., dk) flattened to (N, D); w: (D, M); b: (M,)."""
    return x.flatten(1) @ w + b


def relu(x):
    return torch.relu(x)


def leaky_relu(x, slope: float):
    return F.leaky_relu(x, slope)


def sigmoid(x):
    return torch.sigmoid(x)


def tanh(x):
    return torch.tanh(x)


def absolute(x):
    return torch.abs(x)


def clip(x, low: float, high: float):
    return torch.clamp(x, low, high)


def batchnorm(x, gamma, beta, eps: float):
    """Training mode: batch statistics, the biased variance."""
    return F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)


def layernorm(x, gamma, beta, eps: float):
    return F.layer_norm(x, x.shape[-1:], gamma, beta, eps)


def temporal_affine(x, w, b):
    """x: (N, T, D) -> (N, T, M)."""
    return torch.einsum("ntd,dm->ntm", x, w) + b


def embedding(x, W):
    """x: (N, T) integer indices into the rows of W: (V, D)."""
    return F.embedding(x, W)


def conv(x, w, b, stride: int, pad: int):
    """x: (N, C, H, W), w: (F, C, HH, WW) -> (N, F, Ho, Wo); cross-correlation, as torch does."""
    return F.conv2d(x, w, b, stride=stride, padding=pad)


def max_pool(x, size: int, stride: int):
    return F.max_pool2d(x, size, stride)


def avg_pool(x, size: int):
    return F.avg_pool2d(x, size)


def rnn_step(x, prev_h, Wx, Wh, b):
    return torch.tanh(x @ Wx + prev_h @ Wh + b)


def lstm_step(x, prev_h, prev_c, Wx, Wh, b):
    """Gates in the order input, forget, output, candidate; returns (next_h, next_c)."""
    i, f, o, g = (x @ Wx + prev_h @ Wh + b).chunk(4, dim=1)
    next_c = torch.sigmoid(f) * prev_c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(next_c), next_c


def rnn_batch_first(x, h0, Wx, Wh, b):
    """x: (N, T, D) -> h: (N, T, H), batch first."""
    h, states = h0, []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ Wx + h @ Wh + b)
        states.append(h)
    return torch.stack(states, dim=1)


def rnn_tanh_sequence(x, Wx, Wh):
    """x: (N, T, D) -> h: (N, T, H), h_0 = 0, no bias."""
    h = x.new_zeros(x.shape[0], Wh.shape[0])
    states = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ Wx + h @ Wh)
        states.append(h)
    return torch.stack(states, dim=1)


def softmax_loss(x, y):
    return F.cross_entropy(x, y)


def svm_loss(x, y):
    """Multiclass hinge: sum over j != y_i of max(0, x_ij - x_iy_i + 1), averaged over N."""
    correct = x.gather(1, y[:, None])
    others = 1.0 - F.one_hot(y, x.shape[1]).to(x.dtype)
    return ((x - correct + 1.0).clamp(min=0.0) * others).sum() / x.shape[0]


def softmax_classifier(W, X, y, reg: float):
    return F.cross_entropy(X @ W, y) + reg * (W * W).sum()


def svm_classifier(W, X, y, reg: float):
    return svm_loss(X @ W, y) + reg * (W * W).sum()


def two_layer_net(W1, b1, W2, b2, X, y, reg: float):
    scores = torch.relu(X @ W1 + b1) @ W2 + b2
    return F.cross_entropy(scores, y) + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum())


def temporal_softmax_loss(x, y, mask):
    """Summed over the unmasked time steps, averaged over the batch N."""
    logp = torch.log_softmax(x, dim=2).gather(2, y[..., None])[..., 0]
    return -(logp * mask).sum() / x.shape[0]


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def logistic(W, b, X, y):
    return F.binary_cross_entropy_with_logits(X @ W + b, y.to(X.dtype))
