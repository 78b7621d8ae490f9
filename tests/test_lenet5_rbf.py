"""Facts of the paper's RBF output the generic tests cannot know: the stand-in prototypes, the
loss being positive, and the MAP loss against its definition (paper eq. 9) written directly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derivations import lenet5_rbf


@pytest.mark.parametrize(("K", "F"), [(10, 84), (4, 3), (6, 4), (5, 2)])
def test_prototypes_are_fixed_balanced_and_distinct_while_possible(K, F):
    Pi = lenet5_rbf.prototypes(K, F)
    assert Pi.shape == (K, F)
    assert set(np.unique(Pi)) <= {-1.0, 1.0}
    assert ((Pi == -1.0).sum(axis=1) == F // 2).all()
    distinct = len({tuple(row) for row in Pi})
    assert distinct == min(K, math.comb(F, F // 2))
    np.testing.assert_array_equal(Pi, lenet5_rbf.prototypes(K, F))
    np.testing.assert_array_equal(Pi[:2], lenet5_rbf.prototypes(2, F))


def _inputs(seed: int, N: int, K: int, F: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.7, 1.7, size=(N, F))
    return x, lenet5_rbf.prototypes(K, F), rng.integers(0, K, size=N), np.asarray(2.0 * F)


@pytest.mark.parametrize("seed", range(5))
def test_map_loss_is_eq_9_and_positive(seed):
    x, Pi, y, j = _inputs(seed, N=4, K=5, F=6)
    E, _ = lenet5_rbf.rbf_head(x, Pi, y, j)
    R = ((x[:, None, :] - Pi) ** 2).sum(axis=2)
    direct = np.mean([R[n, y[n]] + math.log(math.exp(-j) + np.exp(-R[n]).sum())
                      for n in range(len(y))])
    # Penalties below 6 * 2.7^2 < 44 here: the unshifted exponentials lose nothing in float64, and
    # the two forms differ by rounding of a few O(10) terms, ~1e-15 relative.
    np.testing.assert_allclose(E, direct, rtol=1e-13)
    assert E > 0


def test_map_loss_at_the_papers_penalties_is_finite_in_float32():
    """At the paper's size every e^{-R} and e^{-j} underflows float32 (below e^{-104}), so eq. (9)
    written directly is log(0); the form shifted by the smallest penalty stays finite."""
    x, Pi, y, j = _inputs(0, N=3, K=10, F=84)
    x32, Pi32, j32 = x.astype(np.float32), Pi.astype(np.float32), j.astype(np.float32)
    R32 = ((x32[:, None, :] - Pi32) ** 2).sum(axis=2)
    with np.errstate(divide="ignore"):
        direct = np.log(np.exp(-j32) + np.exp(-R32).sum(axis=1))
    assert R32.min() > 104 and np.isneginf(direct).all()
    E64, _ = lenet5_rbf.rbf_head(x, Pi, y, j)
    E32, _ = lenet5_rbf.rbf_head(x32, Pi32, y, j32)
    # A float32 sum of 84 squares is off by at most 84 eps32 R <= 84 * 6e-8 * 220 ~ 1.1e-3 (worst
    # case, penalties up to 220 here), about 4e-5 of E ~ 30: rel 1e-4 covers it.
    np.testing.assert_allclose(E32, E64, rtol=1e-4)
