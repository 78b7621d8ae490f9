"""Records whose data comes from numpy's global random state: every call of a case draws the
same numbers (seeded from the case's data seed), other cases others, and the caller's own state
is left as it was."""

from __future__ import annotations

import numpy as np
import torch

import handgrad
from handgrad import adapt
from handgrad.cases import sample_cases
from handgrad.check import check_case


class Dropout:
    """A from-scratch library's inverted dropout, its mask drawn in forward from np.random."""

    def __init__(self, p=0.5):
        self.p = p

    def forward(self, X):
        self.mask = (np.random.rand(*X.shape) < self.p) / self.p
        return X * self.mask

    def backward(self, dY):
        return dY * self.mask


def _reference(x):
    """Draws the mask as the layer does: the first numbers of the same seeded global state."""
    mask = (np.random.rand(*x.shape) < 0.5) / 0.5
    return x * torch.from_numpy(mask).to(x.dtype)


DROPOUT = adapt.layer("dropout-global-random", Dropout, shapes="x: N D",
                      dims={"N": (2, 6), "D": (3, 8)}, reference=_reference)


def test_a_mask_drawn_from_the_global_state_is_the_same_in_every_call_of_a_case():
    """Was: nondeterministic and wrong against autograd, unless nothing touched the global
    state between building the layer and its forward."""
    for seed in range(3):
        report = handgrad.check(DROPOUT, seed=seed, cases=3, shrink=False)
        assert report.passed, report.render(only_failures=True)


class RecordingDropout(Dropout):
    drawn: list[np.ndarray] = []

    def forward(self, X):
        out = super().forward(X)
        RecordingDropout.drawn.append(self.mask.copy())
        return out


def test_each_case_draws_another_mask_and_the_callers_state_is_kept():
    record = adapt.layer("dropout-recording", RecordingDropout, shapes="x: N D",
                         dims={"N": (4, 4), "D": (5, 5)}, reference=_reference)
    np.random.seed(1234)
    expected = np.random.rand(3)
    np.random.seed(1234)
    per_case = []
    for case in sample_cases(record, 0, 3):
        RecordingDropout.drawn = []
        assert all(r.passed for r in check_case(record, case))
        masks = {m.tobytes() for m in RecordingDropout.drawn if m.dtype == np.float64}
        assert len(masks) == 1, f"{len(masks)} different masks within one case"
        per_case.append(masks.pop())
    assert len(set(per_case)) == len(per_case), "two cases drew the same mask"
    np.testing.assert_array_equal(np.random.rand(3), expected)
