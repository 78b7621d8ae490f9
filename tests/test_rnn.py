"""RNN-specific checks the generic record tests cannot make: the two BPTT forms against each
other, the source's delta table against autograd, a long sequence, and truncated BPTT."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import handgrad
from derivations import rnn, rnn_source
from handgrad.cases import Case, build_inputs
from reference import rnn as ref

VARIANTS = [(f, loss) for f in rnn.ACTIVATIONS for loss in ("ce", "l2")]


def inputs_for(f: str, loss: str, seed: int, **dims) -> dict[str, np.ndarray]:
    """Float64 inputs drawn by the record's own samplers, redrawn away from the relu kink."""
    record = rnn.make("sampling", f, loss)
    for data_seed in range(seed, seed + 50):
        inputs = build_inputs(record, Case.of(dims, data_seed))
        _, cache = rnn.forward(**inputs, f=f, loss=loss)
        if f != "relu" or rnn.min_abs_z(cache) >= record.kink_margin:
            return inputs
    raise AssertionError("no draw away from the relu kink")


def assert_close(hand: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """|hand - expected| <= rtol * (|expected| + max |expected|): the engine's rule, atol = rtol."""
    bound = rtol * (np.abs(expected) + np.abs(expected).max())
    assert hand.shape == expected.shape
    assert np.all(np.abs(hand - expected) <= bound), float(np.abs(hand - expected).max())


def autograd_of(f: str, loss: str, inputs, dout: float, window: int | None = None):
    """{input or intermediate: dS/d it} from the reference, S = dout * L."""
    tensors = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    leaves = {k: t.requires_grad_() for k, t in tensors.items() if k != "y"}
    total, inter = ref.total_loss(**tensors, f=f, loss=loss, window=window)
    # the record's intermediates (the reference also returns the steps and L_t for the page)
    wrt = {**leaves, **{k: inter[k] for k in ("a", "h", "z")}}
    grads = torch.autograd.grad(dout * total, list(wrt.values()))
    return {k: g.numpy() for k, g in zip(wrt, grads)}


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_double_sum_equals_linear_time_bptt(f, loss, seed):
    inputs = inputs_for(f, loss, seed, T=9, B=3, D=2, M=4, C=5)
    dout = np.asarray(1.7)
    _, cache = rnn.forward(**inputs, f=f, loss=loss)
    linear = rnn.backward(dout, cache)
    quadratic = rnn_source.backward(dout, cache)
    # Both forms sum the same products in a different order: for each entry, at most T = 9
    # paths of at most T matrix-vector products with entries O(1), so the rounding differs by
    # about T * M * eps ~ 1e-14 of the largest term; 1e-12 leaves a factor 100 and still fails a
    # single dropped path, whose terms are far above 1e-12 of the largest.
    for key in set(quadratic) & set(linear):
        assert_close(quadratic[key], linear[key], rtol=1e-12)


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
def test_delta_table_is_dLt_dzk(f, loss):
    """table[t, k] = dL_t/dz_k for every t and k, zero for k > t, against autograd per L_t."""
    T = 6
    inputs = inputs_for(f, loss, 3, T=T, B=2, D=3, M=4, C=3)
    _, cache = rnn.forward(**inputs, f=f, loss=loss)
    _, table = rnn_source.delta_table(np.asarray(1.0), cache)
    tensors = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    per_step, inter = ref.step_losses(**tensors, f=f, loss=loss)
    for t in range(T):
        (dLt_dz,) = torch.autograd.grad(per_step[t], inter["z"], retain_graph=True)
        assert_close(table[t], dLt_dz.numpy(), rtol=1e-12)
        assert not table[t, t + 1:].any()


def test_thousand_steps_match_autograd_in_linear_memory():
    T, B, D, M, C = 1000, 2, 3, 4, 5
    inputs = inputs_for("tanh", "ce", 0, T=T, B=B, D=D, M=M, C=C)
    tracemalloc.start()
    loss, cache = rnn.forward(**inputs, f="tanh", loss="ce")
    grads = rnn.backward(np.asarray(0.8), cache)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Linear memory: the run peaks near 2 T B (D + M + C) float64 numbers (0.4 MB); 20 of them
    # leave a factor 10, while a (T, T, B, M) table alone would be T^2 B M * 8 = 64 MB, 16 times
    # the bound.
    assert peak < 20 * T * B * (D + M + C) * 8
    expected = autograd_of("tanh", "ce", inputs, 0.8)
    for key, value in expected.items():
        # 1e-9 as the engine's float64 tolerance; the sums run over up to 1000 steps.
        assert_close(grads[key], value, rtol=1e-9)
    assert np.isfinite(loss)


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
@pytest.mark.parametrize("extra", [0, 3])
def test_window_at_least_T_is_full_bptt(f, loss, extra):
    T = 7
    inputs = inputs_for(f, loss, 4, T=T, B=2, D=3, M=4, C=3)
    _, cache = rnn.forward(**inputs, f=f, loss=loss)
    full = rnn.backward(np.asarray(1.3), cache)
    truncated = rnn.backward(np.asarray(1.3), cache, window=T + extra)
    for key in full:
        np.testing.assert_array_equal(truncated[key], full[key])


@pytest.mark.parametrize("window", [1, 2, 3])
def test_truncation_cuts_exactly_at_chunk_starts(window):
    """dL/dz_t equals the full one in the last chunk and differs in every earlier chunk."""
    T = 8
    inputs = inputs_for("tanh", "ce", 5, T=T, B=2, D=3, M=4, C=3)
    _, cache = rnn.forward(**inputs, f="tanh", loss="ce")
    full = rnn.backward(np.asarray(1.0), cache)["z"]
    cut = rnn.backward(np.asarray(1.0), cache, window=window)["z"]
    last_chunk = (T - 1) // window * window
    np.testing.assert_array_equal(cut[last_chunk:], full[last_chunk:])
    for t in range(last_chunk):
        assert np.abs(cut[t] - full[t]).max() > 1e-6 * np.abs(full[t]).max()


@pytest.mark.parametrize("spec", rnn.TRUNCATED, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("seed", [0, 1])
def test_truncated_records_match_detaching_reference(spec, seed):
    """Contract, forward and autograd oracles only: see ``rnn.truncated`` for why."""
    record = rnn.truncated(*spec)
    report = handgrad.check(record, seed=seed, cases=6, checks=("contract", "forward", "autograd"))
    assert report.passed, report.render(only_failures=True)
    window = spec[2]
    longer = handgrad.check(record, dims={"T": 3 * window + 2, "B": 2, "M": 3, "C": 3},
                            checks=("contract", "forward", "autograd"))
    assert longer.passed, longer.render(only_failures=True)
