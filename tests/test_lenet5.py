"""LeNet-5 facts the generic derivation tests cannot know: the paper's sizes and table, the
exact zeros of switched-off kernels, the rot180 form of the input gradient, the two readings of
the source's convolution, and the source's pooling formulas at p = 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import handgrad
from derivations import lenet5, lenet5_mutants
from derivations._lenet5_kernels import (
    PAPER_TABLE,
    random_table,
    weight_grad,
    window_index,
)
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


def test_rbf_network_trains_the_papers_60000_and_fixes_840_prototype_weights():
    record = RECORDS["lenet5-rbf"]
    dims = full_dims(record, lenet5.PAPER)
    inputs = build_inputs(record, Case.of(lenet5.PAPER, 0))
    parameters = set(record.differentiable) - {"X0"}  # the image has a gradient, not a weight
    trainable = sum(int(np.prod(record.shape_of(k, dims))) for k in parameters)
    switched_off = int((inputs["T2"] == 0).sum()) * 25
    assert trainable - switched_off == 60000
    assert "Pi" in record.nondiff and inputs["Pi"].shape == (10, 84)
    assert set(np.unique(inputs["Pi"])) == {-1.0, 1.0}


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


# The 1-D example of lenet5.md: x (3,), a kernel of 2 taps, output gradient g (2,).
X_1D = [1.0, 2.0, 4.0]
G_1D = [1.0, 10.0]


def _autograd_weight_gradient(true_convolution: bool) -> list[float]:
    """dL/dw of L = sum(g * y), y = w (x) x, by autograd through conv1d (a correlation)."""
    x = torch.tensor([[X_1D]], dtype=torch.float64)
    w = torch.tensor([[[0.3, -0.7]]], dtype=torch.float64, requires_grad=True)
    y = F.conv1d(x, torch.flip(w, dims=(2,)) if true_convolution else w)
    (y * torch.tensor([[G_1D]], dtype=torch.float64)).sum().backward()
    return w.grad.flatten().tolist()


def _source_weight_gradient(true_convolution: bool) -> list[float]:
    """The source's g (x) x, (x) read one way or the other, by the NumPy code the records use."""
    X = np.array(X_1D).reshape(1, 1, 3, 1)    # (C, H, W, N)
    dYt = np.array(G_1D).reshape(1, 1, 2, 1)  # (D, Ho, Wo, N)
    source = lenet5.weight_grad_as_written_true_convolution if true_convolution else weight_grad
    return source(dYt, X, (1, 1, 1, 2)).ravel().tolist()


def test_source_weight_gradient_is_right_as_a_correlation_wrong_as_a_true_convolution():
    # Small integers: every product and sum is exact in float64.
    assert _autograd_weight_gradient(true_convolution=False) == [21.0, 42.0]
    assert _source_weight_gradient(true_convolution=False) == [21.0, 42.0]
    assert _autograd_weight_gradient(true_convolution=True) == [42.0, 21.0]
    assert _source_weight_gradient(true_convolution=True) == [12.0, 24.0]


def test_true_convolution_erratum_is_wrong_in_dW_only():
    """Under the true-convolution reading the source's input and bias gradients are right."""
    inputs, hand, auto = _hand_and_autograd(
        "conv-table-err-dw-true-convolution",
        {"N": 2, "C": 2, "D": 4, "kh": 3, "kw": 2, "Ho": 3, "Wo": 2})
    # float64 autograd tolerance of the engine: summation order drifts by ~n eps.
    for key in ("X", "b"):
        np.testing.assert_allclose(hand[key], auto[key], rtol=1e-9, atol=1e-11)
    on = inputs["T"].T != 0
    assert np.abs(hand["W"][on] - auto["W"][on]).max() > 1e-3 * np.abs(auto["W"]).max()


@pytest.mark.parametrize("n", [2, 4, 6, 10, 28])
def test_source_pooling_formulas_are_right_for_2x2_windows_on_even_sizes(n):
    """[(i+1)/2] and w/4 of source 3.4 step 2 are (L23)'s window and 1/p^2 at p = 2."""
    np.testing.assert_array_equal(lenet5_mutants.source_window_index(n, 2), window_index(n, 2))
    assert lenet5_mutants.source_scale(2) == 1.0 / (2 * 2)


@pytest.mark.parametrize("n", [3, 6, 9])
def test_source_pooling_formulas_are_wrong_for_3x3_windows(n):
    assert not np.array_equal(lenet5_mutants.source_window_index(n, 3), window_index(n, 3))
    assert lenet5_mutants.source_scale(3) != 1.0 / (3 * 3)
