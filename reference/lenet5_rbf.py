"""LeNet-5 with the paper's output layer in PyTorch: the oracle's program for
``derivations/lenet5_rbf.py``.

Written from the paper (LeCun et al. 1998, eqs. (7) and (9)): each RBF unit's penalty is the
squared Euclidean distance from F6's output to the unit's fixed prototype, and the MAP loss is
the correct class's penalty plus ``logsumexp`` over the rubbish class's -j and the negated
penalties, averaged over the batch.
"""

from __future__ import annotations

import torch

from reference.lenet5 import trunk


def rbf_map(x, Pi, y, j):
    """MAP loss (0-d) of the RBF units on x (N, F) with prototypes Pi (K, F), and {"R": (N, K)}."""
    R = ((x[:, None, :] - Pi[None, :, :]) ** 2).sum(dim=2)
    rubbish = (-j).reshape(1, 1).expand(len(x), 1)
    competition = torch.logsumexp(torch.cat([rubbish, -R], dim=1), dim=1)
    correct = R.gather(1, y.long()[:, None])[:, 0]
    return (correct + competition).mean(), {"R": R}


def lenet5_rbf(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, Pi, j, y, *, f: str,
               p: int):
    """The MAP loss of LeNet-5 with RBF outputs, and every block's tensors named."""
    Y4, named = trunk(X0, W1, b1, w1, a1, W2, b2, T2, w2, a2, W3, b3, W4, b4, f=f, p=p)
    loss, head = rbf_map(Y4, Pi, y, j)
    return loss, {**head, **named}
