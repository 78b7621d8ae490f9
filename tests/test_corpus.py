"""The corpus of course-style code (``tests/corpus``): every right version passes every oracle,
every wrong version is rejected with the kind of its mistake, and the correct kinked layers that
issue 8 saw failing the Taylor test pass it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import handgrad
from tests.corpus import BY_NAME, RIGHT, WRONG, conv, reproduce_command

# The default run: one seed (--grad-seed) and two cases, the minimal one and one of distinct
# dimensions; the slow sweep below draws ten seeds of four cases.
CASES = 2
SWEEP_SEEDS = range(10)
SWEEP_CASES = 4


def explain(report: handgrad.Report, seed: int, failures=None) -> str:
    """Each failing row with its seed, case, dtype and the command that reproduces it."""
    lines = []
    for r in failures if failures is not None else report.failures:
        lines.append(f"seed {seed}: {r.case} data-seed {r.data_seed} {r.dtype} {r.check} "
                     f"{r.tensor}: {r.kind} {r.message[:160]}\n    reproduce: "
                     + reproduce_command(report.derivation, r.case, r.data_seed))
    return "\n".join(lines)


@pytest.mark.parametrize("right", RIGHT, ids=lambda r: r.name)
def test_right_version_passes_every_oracle(right, grad_seed):
    report = handgrad.check(right, seed=grad_seed, cases=CASES, shrink=False)
    assert report.passed, "\n" + explain(report, grad_seed) + "\n" + \
        report.render(only_failures=True)


@pytest.mark.parametrize("wrong", WRONG, ids=lambda r: r.name)
def test_wrong_version_is_rejected_with_its_kind(wrong, grad_seed):
    report = handgrad.check(wrong, seed=grad_seed, cases=CASES, shrink=False)
    assert not report.passed, f"{wrong.name} carries a mistake ({wrong.erratum}) but " \
        f"passed every oracle:\n{report.render()}"
    assert report.kind == wrong.expect_kind, (
        f"{wrong.name} ({wrong.erratum}) was rejected as {report.kind!r}, expected "
        f"{wrong.expect_kind!r}:\n" + explain(report, grad_seed))


def test_corpus_is_out_of_handgrad_check():
    names = [r.name for r in RIGHT + WRONG]
    assert len(set(names)) == len(names), "two corpus records share a name"
    corpus = Path(__file__).parent / "corpus"
    found = [r.origin for r in handgrad.derivations() if Path(r.origin).is_relative_to(corpus)]
    assert not found, f"corpus records must not be discovered: {found}"
    assert all(r.expect_kind and r.erratum for r in WRONG)


@pytest.mark.parametrize(("size", "stride"), [(2, 2), (3, 1)])
def test_naive_max_pool_breaks_ties_as_torch_does(size, stride):
    """On quantized input, windows hold equal maxima; the naive backward sends the gradient to
    the first of them in row-major order, bit for bit where torch's max_pool2d sends it."""
    rng = np.random.default_rng(size)
    x = rng.integers(-2, 3, size=(2, 3, 7, 7)) / 2.0
    param = {"pool_height": size, "pool_width": size, "stride": stride}
    out, cache = conv.max_pool_forward_naive(x, param)
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    ties = ((windows == out[..., None, None]).sum(axis=(-1, -2)) > 1).sum()
    assert ties > 10, "the quantized input must hold windows with equal maxima"
    dout = rng.standard_normal(out.shape)
    leaf = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.max_pool2d(leaf, size, stride).backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(conv.max_pool_backward_naive(dout, cache), leaf.grad.numpy())


# Correct layers with kinks, on seeds where the Taylor test of the engine before issue 8's fix
# rejected them (slopes 0.5 to 1.49: the remainder is not O(h^2) once a step crosses a kink).
ISSUE_8 = [("relu-class", 1), ("relu-class", 3), ("max-pool-2x2", 1), ("max-pool-2x2", 4),
           ("max-pool-3x3-stride-1", 0), ("max-pool-3x3-stride-1", 2)]


@pytest.mark.parametrize(("name", "seed"), ISSUE_8, ids=lambda v: str(v))
def test_correct_kinked_layer_passes_taylor(name, seed):
    report = handgrad.check(BY_NAME[name], seed=seed, cases=SWEEP_CASES, checks=("taylor",),
                            shrink=False)
    assert report.passed, "\n" + explain(report, seed)


@pytest.mark.slow
@pytest.mark.parametrize("right", RIGHT, ids=lambda r: r.name)
def test_right_version_passes_on_ten_seeds(right):
    failures = []
    for seed in SWEEP_SEEDS:
        report = handgrad.check(right, seed=seed, cases=SWEEP_CASES, shrink=False)
        if not report.passed:
            failures.append(explain(report, seed))
    assert not failures, "\n" + "\n".join(failures)
