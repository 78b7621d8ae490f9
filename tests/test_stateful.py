"""Bookkeeping in backward is told apart from a corrupted cache: a second backward on the same
cache decides. Right gradients with a counter, accumulators or a momentum buffer stepped in
backward never fail; a write that changes what a second backward returns fails, names the
change and the ``writes=`` declaration; the forward's output is never the layer's own."""

from __future__ import annotations

import dataclasses

import numpy as np

import handgrad
from handgrad import adapt
from tests.corpus import stateful
from tests.test_broken import LINEAR


def _contract(report: handgrad.Report) -> list[handgrad.Result]:
    return [r for r in report.results if r.check == "contract" and r.tensor == "(cache)"]


def test_a_step_counter_left_undeclared_is_a_warning_that_names_writes():
    """Was: FAIL [mutated-cache] with the advice to compute into new arrays."""
    record = adapt.layer("rnn-counter-undeclared", stateful.CountingRNN, **stateful.RNN)
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.passed, report.render(only_failures=True)
    rows = _contract(report)
    assert rows and {r.status for r in rows} == {"warning"}, rows
    assert "writes=('t',)" in rows[0].message and "not a gradient error" in rows[0].message


def test_accumulators_need_the_declaration_and_the_message_gives_it():
    record = adapt.layer("rnn-accumulators-undeclared", stateful.AccumulatingRNN,
                         **stateful.RNN)
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.kind == "mutated-cache"
    assert "writes=('acc',)" in report.kind_result.message
    gradients = [r for r in report.results if r.check == "autograd"]
    assert gradients and all(r.passed for r in gradients), "the gradients themselves are right"
    assert handgrad.check(stateful.RIGHT[1], cases=2, shrink=False).passed


def test_a_momentum_buffer_stepped_in_backward_passes_without_a_declaration():
    report = handgrad.check(stateful.RIGHT[2], cases=2, shrink=False)
    assert report.passed
    assert {r.kind for r in _contract(report)} == {"cache-bookkeeping"}


def test_writes_on_a_plain_record_silences_declared_bookkeeping_only():
    def forward(x, W):
        return x @ W, {"x": x, "W": W, "calls": np.zeros(1)}

    def backward(dout, cache):
        cache["calls"] += 1.0  # how many backward passes used this cache
        return {"x": dout @ cache["W"].T, "W": cache["x"].T @ dout}

    counted = dataclasses.replace(LINEAR, name="linear-counts-calls", forward=forward,
                                  backward=backward)
    report = handgrad.check(counted, cases=2, shrink=False)
    assert report.passed and "writes=('calls',)" in _contract(report)[0].message
    declared = dataclasses.replace(counted, name="linear-counts-calls-declared",
                                   writes=("calls",))
    report = handgrad.check(declared, cases=2, shrink=False)
    assert report.passed and not _contract(report)


def test_a_declaration_never_covers_a_write_into_the_forward_output():
    def forward(x, W):
        out = x @ W
        return out, {"x": x, "W": W, "out": out}

    def backward(dout, cache):
        cache["out"] *= 0.0
        return {"x": dout @ cache["W"].T, "W": cache["x"].T @ dout}

    record = dataclasses.replace(LINEAR, name="linear-zeroes-output", forward=forward,
                                 backward=backward, writes=("out",))
    report = handgrad.check(record, cases=2, shrink=False)
    assert report.kind == "mutated-cache" and "next layer's input" in report.kind_result.message
