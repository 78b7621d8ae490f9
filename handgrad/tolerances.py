"""Tolerances, keyed by dtype and check, merged with a record's overrides.

A hand gradient ``h`` passes against a reference ``r`` elementwise when

    |h - r| <= atol * scale + rtol * |r|,      scale = max |r| over the tensor

(the ``torch.testing.assert_close`` rule with an absolute term made relative to the tensor's own
size: cancellation in a sum leaves an absolute error proportional to the summands, so a fixed
atol would be meaningless across tensors of different magnitude).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DEFAULT: dict[str, dict[str, dict[str, float]]] = {
    "float64": {
        # Two float64 programs computing the same sums in a different order differ by about
        # n * eps (eps = 2.2e-16) relative to the summands; n stays below 1e5 here, so 1e-11 of
        # the largest element bounds the drift, and 1e-9 relative leaves a factor 1e3 of margin
        # while a 1e-6 relative error (a constant rounded to six digits) still fails by 1e3.
        "autograd": {"rtol": 1e-9, "atol": 1e-11},
        "forward": {"rtol": 1e-9, "atol": 1e-11},
        # Richardson-extrapolated central differences with h ~ eps^(1/5): truncation O(h^4) ~ 1e-15
        # and round-off eps*|S|/h ~ 1e-12 |S| relative to the gradient's scale. The estimate's own
        # error bound is added to the allowance on top of these (see fd.py).
        "fd": {"rtol": 1e-7, "atol": 1e-8},
    },
    "float32": {
        # float32 eps = 1.2e-7; the hand and the torch program round differently at every step,
        # and the errors of a few sequential layers of sums (about sqrt(n) eps each) compound.
        # 1e-4 relative and 1e-5 of the tensor's largest element hold that with a margin of ~10
        # on the derivations here; real float64 bugs are caught by the float64 checks.
        "autograd": {"rtol": 1e-4, "atol": 1e-5},
        "forward": {"rtol": 1e-4, "atol": 1e-5},
    },
}

# Taylor remainder: a right gradient leaves |L(p + h v) - L(p) - h <g, v>| = O(h^2) (slope 2 on a
# log-log plot), a wrong one O(h) (slope 1). The midpoint 1.5 splits them; the points used lie
# above the round-off floor, so curvature noise cannot pull a right gradient below it.
TAYLOR_MIN_SLOPE = 1.5
# Second-order Taylor remainder |S(p + h v) - S(p) - h <g, v> - h^2/2 <v, H v>|: O(h^3) (slope 3)
# with the right H v, O(h^2) with a wrong one, O(h) with a wrong gradient; 2.5 splits 3 from 2
# as 1.5 splits 2 from 1, over points above the round-off floor.
TAYLOR2_MIN_SLOPE = 2.5

# Identities between two hand linearisations, with no reference (the dot-product test
# <u, J v> = <J^T u, v> and the symmetry <u, H v> = <v, H u>), in float64: each inner product is
# a sum of n terms whose rounding is at most about n eps of the sum of their magnitudes, and the
# hand J v, J^T u, H v carry their own rounding, of eps times their depth relative to the terms.
# 1e-8 of the magnitude sum(|u * Jv|) + sum(|J^T u * v|) leaves a factor 4.5e7 over eps for
# depth and n (far beyond either here), while the errors these tests exist for (a sign, a factor,
# a transpose, a dropped term or slice) change the inner products by a visible fraction of it.
IDENTITY_RTOL = 1e-8


def tolerance(dtype: str, check: str, overrides: Mapping[str, Mapping[str, float]]) -> dict:
    """The (rtol, atol) for ``check`` in ``dtype``, with the record's overrides applied."""
    base = dict(DEFAULT[dtype].get(check) or DEFAULT[dtype]["autograd"])
    base.update(overrides.get(dtype, {}))
    return base


def eps(dtype: str) -> float:
    return float(np.finfo(dtype).eps)
