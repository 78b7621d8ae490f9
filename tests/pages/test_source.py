"""The source write-up's own equations (source_equations.md), bound once to our references
(source_binding.toml): what is rejected, with which kind, and what passes; and the command
that prints the page marked."""

from __future__ import annotations

from pathlib import Path

import pytest

from handgrad import cli
from handgrad.binding import check_bound

HERE = Path(__file__).parent
PAGE, BINDING = HERE / "source_equations.md", HERE / "source_binding.toml"


@pytest.fixture(scope="module")
def marked():
    return {m.tag: m for m in check_bound(PAGE, BINDING)}


def test_every_display_of_the_source_is_on_the_page_and_bound(marked):
    assert len(marked) == 41
    assert all(m.status != "unbound" for m in marked.values())
    assert all(m.message for m in marked.values() if m.status == "not-checkable")


def test_the_repeated_label_is_rejected_at_its_equation(marked):
    # 4.4's last result, labelled dL/dU, is dL/db: an M-vector where U is M x M
    assert (marked["S4.4i"].status, marked["S4.4i"].kind) == ("fail", "shape")


def test_the_index_typos_of_the_mlp_forward_are_notation(marked):
    # y_i = f_2(sum_k w_jk z_k + b_k): the left side's free index is not the right side's
    assert (marked["S2.3b"].status, marked["S2.3b"].kind) == ("fail", "notation")


def test_the_sources_right_equations_pass(marked):
    right = ("S4.2b", "S4.3a", "S4.3b", "S4.4a", "S4.4c", "S4.4g", "S4.4h")
    assert {t: marked[t].status for t in right} == dict.fromkeys(right, "pass")


@pytest.mark.xfail(strict=True, reason="the engine does not yet evaluate the one-sample hidden "
                   "layer z_k = f_1(sum_{i=1}^N w_ki x_i + b_k) bound per sample (a right "
                   "equation reported wrong with kind shape): see the branch's report")
def test_the_hidden_layer_as_the_source_writes_it_passes(marked):
    assert marked["S2.3a"].status == "pass"


def test_the_command_prints_the_marked_source(capsys):
    status = cli.main(["page", str(PAGE), "--bind", str(BINDING)])
    out = capsys.readouterr().out
    assert status == 1  # the source holds wrong equations
    assert "## 4.4 Backward Propagation: Backpropagation Through time (BPTT)" in out
    line = next(s for s in out.splitlines() if s.startswith("  (S4.4i)"))
    assert "WRONG [shape]" in line and r"\delta_{t,k}" in line
    assert out.rstrip().splitlines()[-1].endswith("of 41 equations")
