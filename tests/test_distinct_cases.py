"""The "distinct" case is distinct whatever the ranges: every pair of dimensions that can
differ does, derived ones included (Ho and Wo of a 2 x 2 pool over small maps), and the
sampled cases lean away from square and all-equal sizes."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad
from handgrad import adapt
from handgrad.cases import distinct_dims, full_dims, sample_cases
from tests.corpus import reference as ref


class MaxPool2D:
    """A from-scratch library's 2 x 2 max-pool layer with loops over the output map."""

    def forward(self, X):
        self.X = X
        n, c, h, w = X.shape
        out = np.zeros((n, c, h // 2, w // 2))
        for i in range(h // 2):
            for j in range(w // 2):
                out[:, :, i, j] = X[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
        self.out = out
        return out

    def backward(self, dY):
        dX = np.zeros(self.X.shape)
        for i in range(dY.shape[2]):
            for j in range(dY.shape[3]):
                window = self.X[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                mask = window == self.out[:, :, i, j][:, :, None, None]
                dX[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = mask * dY[:, :, i, j][:, :, None, None]
        return dX


class MaxPool2DHeightWidthSwapped(MaxPool2D):
    """The same layer whose forward loops over (w, h) where (h, w) is meant: right on square
    maps only."""

    def forward(self, X):
        self.X = X
        n, c, h, w = X.shape
        out = np.zeros((n, c, h // 2, w // 2))
        for i in range(w // 2):
            for j in range(h // 2):
                out[:, :, i, j] = X[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
        self.out = out
        return out


# Narrow ranges, as the layer was met: maps of 2 or 4 rows and columns.
SMALL_MAPS = {"shapes": "x: N C H W", "reference": lambda x: ref.max_pool(x, 2, 2),
              "dims": {"N": (1, 2), "C": (1, 2), "Ho": (1, 2), "Wo": (1, 2), "H": "2 * Ho",
                       "W": "2 * Wo"}}
RIGHT = adapt.layer("maxpool-small-maps", MaxPool2D, **SMALL_MAPS)
SWAPPED = adapt.layer("maxpool-small-maps-h-w-swapped", MaxPool2DHeightWidthSwapped,
                      **SMALL_MAPS)


def test_the_distinct_case_separates_derived_dimensions_of_one_tensor():
    dims = full_dims(RIGHT, distinct_dims(RIGHT))
    assert dims["Ho"] != dims["Wo"] and dims["H"] != dims["W"], dims


def test_a_pool_that_confuses_height_and_width_is_rejected_on_every_seed():
    """Was: accepted on 2 of 30 seeds, whose cases were all square."""
    passed = [seed for seed in range(30) if handgrad.check(
        SWAPPED, seed=seed, cases=4, checks=("contract", "autograd"), shrink=False).passed]
    assert not passed, f"the height/width mix-up passed on seeds {passed}"


def test_the_right_pool_passes_on_the_same_cases():
    for seed in range(3):
        report = handgrad.check(RIGHT, seed=seed, cases=4, shrink=False)
        assert report.passed, report.render(only_failures=True)


@pytest.mark.parametrize("ranges", [
    {"N": (1, 2), "D": (1, 2), "K": (1, 2)},
    {"N": (2, 2), "D": (1, 2), "K": (3, 3)},
    {"N": (1, 8), "D": (1, 8), "K": (1, 8)},
])
def test_the_distinct_case_makes_every_pair_that_can_differ_differ_inside_each_tensor(ranges):
    """A size of 1 separates two dimensions only where their range holds no third size (a 1
    where 3 was possible would hide a mean taken for a sum over that axis)."""
    record = handgrad.Derivation(name="matmul", forward=lambda x, W: (x @ W, (x, W)),
                                 backward=lambda d, c: {"x": d @ c[1].T, "W": c[0].T @ d},
                                 reference=lambda x, W: x @ W,
                                 inputs={"x": ("N", "D"), "W": ("D", "K")}, dims=ranges)
    dims = distinct_dims(record)
    for a, b in (("N", "D"), ("D", "K")):
        could = len(set(range(ranges[a][0], ranges[a][1] + 1))
                    | set(range(ranges[b][0], ranges[b][1] + 1))) > 1
        assert dims[a] != dims[b] or not could, dims


def test_sampled_cases_lean_away_from_square_maps():
    """Of the sampled (not minimal, not distinct) cases over 20 seeds, most are non-square."""
    sampled = [c.dim_map for seed in range(20) for c in sample_cases(RIGHT, seed, 6)
               if c.origin == "sampled"]
    non_square = np.mean([d["Ho"] != d["Wo"] for d in sampled])
    assert non_square > 0.5, f"{non_square:.0%} of {len(sampled)} sampled cases non-square"


def test_drawing_cases_writes_nothing_and_ignores_the_callers_local_constants(tmp_path,
                                                                              monkeypatch):
    """Hypothesis would read constants out of the caller's modules into its draws and cache
    them in .hypothesis/ (a side effect it warns about during pytest's collection)."""
    import hypothesis.internal.conjecture.providers as providers

    monkeypatch.chdir(tmp_path)
    before = [c.dims for c in sample_cases(RIGHT, 5, 8)]
    assert not (tmp_path / ".hypothesis").exists()
    crowded = providers.Constants()
    for v in (1, 2):
        crowded.add(v)
    monkeypatch.setattr(providers, "_get_local_constants", lambda: crowded)
    assert [c.dims for c in sample_cases(RIGHT, 5, 8)] == before


def test_the_distinct_case_never_leaves_at_1_a_dimension_that_could_be_3():
    record = handgrad.Derivation(name="matmul-batch", forward=lambda x, W: (x @ W, (x, W)),
                                 backward=lambda d, c: {"x": d @ c[1].T, "W": c[0].T @ d},
                                 reference=lambda x, W: x @ W,
                                 inputs={"x": ("N", "D"), "W": ("D", "K")},
                                 dims={"N": (1, 3), "D": (2, 2), "K": (3, 3)})
    assert distinct_dims(record)["N"] >= 2
