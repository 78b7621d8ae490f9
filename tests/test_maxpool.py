"""Facts of the max-pooling derivation (maxpool.md): torch's tie-breaking, the output size,
small examples worked by hand, and where each transcribed mistake is exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derivations import maxpool, maxpool_mistakes

GEOMETRIES = [((2, 2), (2, 2)), ((3, 3), (1, 1)), ((2, 3), (1, 2)), ((3, 2), (2, 1)),
              ((3, 3), (2, 2)), ((1, 4), (1, 3)), ((4, 1), (2, 2))]
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def torch_pool(x: np.ndarray, window, stride):
    """torch's output and the flat index (h * W + w) in its plane of each window's chosen
    element."""
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    out, index = F.max_pool2d(t, window, stride, return_indices=True)
    return out, index.numpy()


def hand_index(cache: maxpool.Cache) -> np.ndarray:
    """The flat index in its (H, W) plane of the element the hand forward chose, per window."""
    kw = cache.window[1]
    flat = maxpool.source_index(cache, lambda t: t // kw, lambda t: t % kw)
    return flat % (cache.x.shape[2] * cache.x.shape[3])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("window,stride", GEOMETRIES)
def test_ties_go_where_torch_sends_them(window, stride, dtype):
    """On a 3-level grid nearly every window is tied; the chosen element must be torch's, and
    with integer upstream gradients (exact sums in either dtype) dx must equal x.grad bit for
    bit."""
    seed = 20240 + GEOMETRIES.index((window, stride))
    rng = np.random.default_rng(seed)
    shape = (3, 2, 9, 10)
    x = (rng.integers(-1, 2, size=shape) / 2.0).astype(dtype)
    out, cache = maxpool.forward(x, window=window, stride=stride)
    t_out, t_index = torch_pool(x, window, stride)
    where = f"seed {seed}, shape {shape}, {dtype}, window {window}, stride {stride}"
    ties = sum(int((maxpool.tap(x, i, j, out.shape[2:], stride) == out).sum())
               for i in range(window[0]) for j in range(window[1])) - out.size
    assert ties > out.size // 4, f"the sampler made too few ties to test anything ({where})"
    np.testing.assert_array_equal(out, t_out.detach().numpy(), err_msg=where)
    np.testing.assert_array_equal(hand_index(cache), t_index, err_msg=where)

    dout = rng.integers(-4, 5, size=out.shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    F.max_pool2d(tx, window, stride).backward(torch.from_numpy(dout))
    dx = maxpool.backward(dout, cache)["x"]
    assert dx.dtype == x.dtype, where
    np.testing.assert_array_equal(dx, tx.grad.numpy(), err_msg=where)


def test_torch_takes_the_first_maximum_in_row_major_order():
    """The rule (P3) states, on windows small enough to check by eye."""
    for dtype in TORCH_DTYPES.values():
        flat = torch.zeros(1, 1, 3, 3, dtype=dtype)
        assert F.max_pool2d(flat, 3, 1, return_indices=True)[1].item() == 0
        # 2 x 3 window, maxima at (0, 1), (0, 2), (1, 0), (1, 1): the first is (0, 1), index 1.
        x = torch.tensor([[[[0.0, 1, 1], [1, 1, 0]]]], dtype=dtype)
        assert F.max_pool2d(x, (2, 3), (1, 2), return_indices=True)[1].item() == 1
    x = np.array([[[[0.0, 1, 1], [1, 1, 0]]]])
    _, cache = maxpool.forward(x, window=(2, 3), stride=(1, 2))
    assert int(cache.switch[0, 0, 0, 0]) == 1


def test_output_size_is_floor_division_for_any_window_and_stride():
    """(P1) against torch's output shape and the hand forward's, for every window and stride
    up to 4 and every input size they fit in up to 12."""
    for k, s, n in itertools.product(range(1, 5), range(1, 5), range(1, 13)):
        if n < k:
            continue
        expected = (n - k) // s + 1
        assert maxpool.output_size(n, k, s) == expected
        x = np.arange(float(n * 5)).reshape(1, 1, n, 5)
        out, _ = maxpool.forward(x, window=(k, 2), stride=(s, 1))
        t_out = F.max_pool2d(torch.from_numpy(x), (k, 2), (s, 1))
        assert out.shape == tuple(t_out.shape) == (1, 1, expected, 4), (k, s, n)


def test_derived_sizes_give_the_sampled_output_and_leftover():
    for window, stride in GEOMETRIES:
        derive = maxpool.derive(window, stride)
        for Ho, Wo in itertools.product(range(1, 4), repeat=2):
            for Rh, Rw in itertools.product(range(1, stride[0] + 1), range(1, stride[1] + 1)):
                d = derive({"Ho": Ho, "Wo": Wo, "Rh": Rh, "Rw": Rw})
                assert maxpool.output_size(d["H"], window[0], stride[0]) == Ho
                assert maxpool.output_size(d["W"], window[1], stride[1]) == Wo
                assert d["H"] - ((Ho - 1) * stride[0] + window[0]) == Rh - 1


def test_two_by_two_example_by_hand():
    x = np.array([[1.0, 5, 2, 0],
                  [3, 4, 8, 7],
                  [0, 0, 1, 1],
                  [6, 0, 9, 2],
                  [9, 9, 9, 9]])[None, None]        # the last row is past the last window
    out, cache = maxpool.forward(x, window=(2, 2), stride=(2, 2))
    np.testing.assert_array_equal(out[0, 0], [[5, 8], [6, 9]])
    dx = maxpool.backward(np.array([[[[10.0, 20], [30, 40]]]]), cache)["x"][0, 0]
    expected = np.zeros((5, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 2] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx, expected)


def test_overlapping_windows_add_at_a_shared_maximum():
    """Row [1, 3, 2, 0], windows of 2 at stride 1: 3 is the maximum of the first two windows
    and gets both their gradients; 2 is the third window's."""
    x = np.array([1.0, 3, 2, 0]).reshape(1, 1, 1, 4)
    out, cache = maxpool.forward(x, window=(1, 2), stride=(1, 1))
    np.testing.assert_array_equal(out.ravel(), [3, 3, 2])
    dx = maxpool.backward(np.array([1.0, 10, 100]).reshape(1, 1, 1, 3), cache)["x"]
    np.testing.assert_array_equal(dx.ravel(), [0, 11, 100, 0])


def _same_as_right(backward, window, stride, sampler, seed: int) -> bool:
    """Whether ``backward`` gives the right dx up to the order of its sums. An element here is
    the maximum of at most 4 windows; adding 4 float64 terms in another order moves the sum by
    at most 3 eps times the sum of their sizes, under 16 eps max|dout|."""
    rng = np.random.default_rng(seed)
    x = sampler(rng, (2, 3, 7, 8), {})
    out, cache = maxpool.forward(x, window=window, stride=stride)
    dout = rng.standard_normal(out.shape)
    atol = 16 * np.finfo(np.float64).eps * float(np.abs(dout).max())
    return np.allclose(backward(dout, cache)["x"], maxpool.backward(dout, cache)["x"],
                       rtol=0.0, atol=atol)


def uniform(rng, shape, dims):
    return rng.uniform(-1.0, 1.0, size=shape)


def test_each_mistake_is_exact_where_the_table_says_it_hides():
    """Where each mistake of maxpool.md is right (why it survives a quick test), checked."""
    m = maxpool_mistakes
    for seed in range(3):
        assert _same_as_right(m.overwrite, (2, 2), (2, 2), uniform, seed)
        assert not _same_as_right(m.overwrite, (3, 3), (1, 1), uniform, seed)
        assert _same_as_right(m.decoded_by_height, (3, 3), (2, 2), uniform, seed)
        assert not _same_as_right(m.decoded_by_height, (2, 3), (2, 3), uniform, seed)
        assert _same_as_right(m.every_tied_maximum, (3, 3), (2, 2), uniform, seed)
        assert not _same_as_right(m.every_tied_maximum, (3, 3), (2, 2), maxpool.quantized, seed)
