"""MLP facts the generic tests cannot know: why the source's dL/db2 is checked with the L2 loss."""

from __future__ import annotations

import numpy as np
import pytest

from derivations import mlp, mlp_source
from handgrad.cases import Case, build_inputs


@pytest.mark.parametrize("seed", range(3))
def test_source_db2_is_zero_under_cross_entropy_and_not_under_l2(seed):
    """Rows of dL/da2 = yhat - Y sum to 0 under cross-entropy, so the source's sum over the outputs
    cannot show its error there; under L2 with a sigmoid output it does."""
    dims = {"N": 3, "d": 4, "M": 5, "C": 4}
    for loss, vanishes in (("ce", True), ("l2sig", False)):
        record = mlp.make(loss, "tanh")
        inputs = build_inputs(record, Case.of(dims, seed))
        _, cache = record.forward(**inputs)
        right = record.backward(np.asarray(1.0), cache)
        source = mlp_source.db2_summed_over_outputs(np.asarray(1.0), cache)["b2"]
        scale = np.abs(right["a2"]).max()
        # Cancellation in a sum of N * C = 12 terms of O(scale): rounding ~ 12 eps scale.
        assert (np.abs(source).max() <= 1e-13 * scale) == vanishes
        assert np.abs(source - right["b2"]).max() > 1e-3 * scale
