"""The mutation catalogue's operators, on equations of the catalogue's pages (the mutants'
verdicts are in ``test_mutants_caught.py``)."""

from __future__ import annotations

import pytest

from handgrad.pages.mutate import KINDS, mutants, mutate_page

M8 = (r"\frac{\partial L}{\partial W_2} = \Big(\frac{\partial L}{\partial a_2}\Big)^{\!\top} h"
      r" + \lambda W_2 \tag{M8}")
R9 = (r"\frac{\partial L}{\partial h_t} = W_y^\top \frac{\partial L}{\partial a_t} + U^\top "
      r"\frac{\partial L}{\partial z_{t+1}} \tag{R9}")
M11 = r"\frac{\partial L}{\partial a_1} = \frac{\partial L}{\partial h} \odot f_1'(a_1) \tag{M11}"


def by_operator(latex: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in mutants(latex):
        out.setdefault(m.operator, []).append(m.latex)
    return out


def test_sign_and_factor_wrap_the_whole_right_side():
    ops = by_operator(M8)
    rhs = r"\Big(\frac{\partial L}{\partial a_2}\Big)^{\!\top} h + \lambda W_2"
    assert ops["sign"] == [M8.replace(rhs, rf"-\left({rhs}\right)")]
    assert ops["factor"] == [M8.replace(rhs, rf"2\left({rhs}\right)")]


def test_dropped_terms_and_transposes():
    ops = by_operator(M8)
    assert ops["dropped-term"] == [
        M8.replace(r"\Big(\frac{\partial L}{\partial a_2}\Big)^{\!\top} h +", ""),
        M8.replace(r" + \lambda W_2", " ")]
    assert ops["transpose-dropped"] == [M8.replace(r"^{\!\top}", "")]
    assert ops["transpose-added"] == [M8.replace(r"\lambda W_2", r"\lambda W_2^\top")]


def test_time_offsets_reach_into_the_gradients_read():
    offsets = by_operator(R9)["time-offset"]
    assert R9.replace(r"z_{t+1}", "z_{t}") in offsets
    assert R9.replace(r"\partial a_t}", r"\partial a_{t-1}}") in offsets
    # the gradient being defined (left of =) is never changed
    assert all(m.startswith(r"\frac{\partial L}{\partial h_t} =") for m in offsets)


def test_f_for_fprime():
    assert by_operator(M11)["f-for-fprime"] == [M11.replace("f_1'", "f_1")]


def test_sum_ranges_and_norms_are_not_operands():
    r19 = (r"\frac{\partial L}{\partial U} = \sum_{t=1}^{T} \sum_{k=1}^{t} \delta_{t,k} "
           r"h_{k-1}^\top \tag{R19}")
    changes = {(m.operator, m.change) for m in mutants(r19)}
    assert ("transpose-dropped", r"^\top -> (nothing)") in changes
    assert not any(m.original in ("^{T}", "{t=1}", "t") and m.operator != "time-offset"
                   for m in mutants(r19))
    assert all("{T}" not in m.original for m in mutants(r19) if m.operator != "sign"
               and m.operator != "factor")
    m5 = r"L = \tfrac{\lambda}{2}\left(\lVert W_1\rVert_F^2 + \lVert W_2\rVert_F^2\right) \tag{M5}"
    assert "transpose-added" not in by_operator(m5)


def test_every_operator_has_its_kinds():
    for latex in (M8, R9, M11):
        for m in mutants(latex):
            assert m.kinds == KINDS[m.operator]


def test_an_equation_without_a_right_side_has_no_mutants():
    assert mutants(r"\sigma' = \sigma(1-\sigma)") != []
    assert mutants(r"\theta \in \Theta") == []


def test_mutate_page_changes_that_equation_only():
    page = f"# p\n\n$${M8}$$\n\n$${M11}$$\n"
    m = mutants(M11)[0]
    out = mutate_page(page, M11, m)
    assert out == page.replace(M11, m.latex)
    assert M8 in out
    with pytest.raises(ValueError, match="2 times"):
        mutate_page(page + f"$${M11}$$", M11, m)
