"""LeNet-5 facts the generic derivation tests cannot know: the paper's sizes and table, the
exact zeros of switched-off kernels, and the rot180 form of the input gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import handgrad
from derivations import lenet5
from derivations._lenet5_kernels import PAPER_TABLE, random_table
from handgrad.cases import Case, build_inputs, full_dims, upstream

RECORDS = {r.name: r for r in handgrad.derivations()}

# The paper's Table I, as listed in its text: the S2 maps feeding each C3 map.
PAPER_COLUMNS = ["012", "123", "234", "345", "450", "501", "0123", "1234", "2345", "3450", "4501",
                 "5012", "0134", "1245", "0235", "012345"]


def test_connection_table_is_the_papers():
    expected = np.zeros((6, 16), dtype=int)
    for d, maps in enumerate(PAPER_COLUMNS):
        expected[[int(p) for p in maps], d] = 1
    np.testing.assert_array_equal(PAPER_TABLE, expected)


def test_trainable_parameters_per_layer_are_the_papers():
    record = RECORDS["lenet5"]
    dims = full_dims(record, lenet5.PAPER)
    inputs = build_inputs(record, Case.of(lenet5.PAPER, 0))
    counts = {}
    for layer, names in lenet5.LAYERS.items():
        counts[layer] = 0
        for name in names:
            shape = record.shape_of(name, dims)
            # Only the kernels the table switches on are parameters.
            kernels = inputs["T2"].sum() if name == "W2" else np.prod(shape[:2])
            counts[layer] += int(kernels * np.prod(shape[2:]))
    paper = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164}
    assert {k: counts[k] for k in paper} == paper
    assert sum(paper.values()) == 60000
    assert counts["output"] == 10 * 84 + 10


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (4, 1), (3, 5), (6, 16), (2, 9)])
def test_random_table_feeds_every_output_map(shape):
    for seed in range(20):
        T = random_table(np.random.default_rng(seed), shape, {})
        assert set(np.unique(T)) <= {0, 1}
        assert (T.sum(axis=0) >= 1).all()


def _hand_and_autograd(name: str, dims: dict):
    """Hand gradients and autograd's (of the same S = sum(dout * out)) for record ``name``."""
    record = RECORDS[name]
    case = Case.of({**{k: lo for k, (lo, _) in record.dims.items()}, **dims}, 1)
    inputs = build_inputs(record, case)
    out, cache = record.forward(**{k: v.copy() for k, v in inputs.items()})
    dout = upstream(np.shape(out), case)
    hand = record.backward(dout.copy(), cache)
    tensors = {k: torch.tensor(v, requires_grad=k in record.differentiable)
               for k, v in inputs.items()}
    ref = record.reference(**tensors)
    ref_out = ref[0] if isinstance(ref, tuple) else ref
    (ref_out * torch.tensor(dout)).sum().backward()
    auto = {k: t.grad.numpy() for k, t in tensors.items() if k in record.differentiable}
    return inputs, hand, auto


@pytest.mark.parametrize("name, weight, table, dims", [
    ("conv-table-paper", "W", "T", {"N": 2}),
    ("conv-table", "W", "T", {"N": 2, "C": 4, "D": 5, "kh": 3, "kw": 2, "Ho": 3, "Wo": 4}),
    ("lenet5", "W2", "T2", lenet5.PAPER),
])
def test_switched_off_kernels_get_exactly_zero_gradient(name, weight, table, dims):
    inputs, hand, auto = _hand_and_autograd(name, dims)
    off = inputs[table].T == 0
    assert off.any() and not off.all()
    for grad in (hand[weight], auto[weight]):
        assert (grad[off] == 0.0).all()
        assert (grad[~off] != 0.0).all()


@pytest.mark.parametrize("dims", [
    {"N": 2, "C": 3, "D": 4, "kh": 3, "kw": 2, "Ho": 4, "Wo": 3},
    {"N": 3, "C": 1, "D": 2, "kh": 1, "kw": 4, "Ho": 2, "Wo": 5},
])
def test_input_gradient_is_the_rotated_full_correlation(dims):
    """dX[p] = sum_d rot180(W[d, p] T[p, d]) full-correlated with dYt[d], written in torch."""
    inputs, hand, _ = _hand_and_autograd("conv-table", dims)
    kernels = torch.tensor(inputs["W"] * inputs["T"].T[:, :, None, None])
    rotated = torch.flip(kernels, dims=(2, 3)).transpose(0, 1)
    dYt = torch.tensor(np.ascontiguousarray(hand["Yt"]))
    padded = F.pad(dYt, (dims["kw"] - 1,) * 2 + (dims["kh"] - 1,) * 2)
    np.testing.assert_allclose(hand["X"], F.conv2d(padded, rotated).numpy(), rtol=1e-12,
                               atol=1e-14)
