"""The compact shapes and dimension expressions of handgrad.shapes: what they parse to, and
errors that name the derivation and the fix for every malformed string."""

from __future__ import annotations

import pytest

from handgrad.record import DerivationError
from handgrad.shapes import parse_dims, parse_shapes, permutation


def test_shapes_parse_names_integers_and_scalars():
    assert parse_shapes("x: N D, w: 3 D, s: (), b: M", derivation="d") == {
        "x": ("N", "D"), "w": (3, "D"), "s": (), "b": ("M",)}
    assert parse_shapes({"W": "D M", "b": ("M",)}, derivation="d") == {"W": ("D", "M"),
                                                                         "b": ("M",)}


@pytest.mark.parametrize(("text", "message"), [
    ("x N D", r"'mine': shapes entry 'x N D' has no ':'.*e.g. 'x: N D, w: D M'"),
    ("x: N*2", r"'mine': shapes\['x'\]: 'N\*2' is neither.*dims=\{'Ho': 'H - HH \+ 1'\}"),
    ("x: N, x: D", r"'mine': shapes names 'x' twice"),
    ("2x: N", r"'mine': shapes: '2x' is not a valid input name"),
    ("", r"'mine': shapes is empty"),
])
def test_malformed_shapes_name_the_derivation_and_the_fix(text, message):
    with pytest.raises(DerivationError, match=message):
        parse_shapes(text, derivation="mine")


def test_dims_expressions_derive_in_dependency_order():
    dims = parse_dims({"N": (1, 3), "H": (4, 8), "HH": (1, 3), "S": 1,
                       "Wo": "Ho + 1", "Ho": "(H - HH) // S + 1", "M": "max(N, 2) * 2 % 5"},
                      derivation="conv")
    assert dims.ranges == {"N": (1, 3), "H": (4, 8), "HH": (1, 3), "S": (1, 1)}
    assert dims.derive({"N": 3, "H": 6, "HH": 3, "S": 1}) == {"Ho": 4, "Wo": 5, "M": 1}


@pytest.mark.parametrize(("dims", "message"), [
    ({"N": (1, 2), "Ho": "N / 2"}, r"'conv': dims\['Ho'\] = 'N / 2': 'N / 2' is not allowed "
                                   r"\(sizes are integers: use // for division\)"),
    ({"N": (1, 2), "Ho": "N ** 2"}, r"write a power as a product"),
    ({"N": (1, 2), "Ho": "__import__('os').getpid()"}, r"is not allowed"),
    ({"N": (1, 2), "Ho": "N.real"}, r"'N.real' is not allowed"),
    ({"N": (1, 2), "Ho": "N - K"}, r"uses \['K'\], which has no range; add it to dims"),
    ({"A": "B + 1", "B": "A - 1"}, r"dims \['A', 'B'\] are defined through each other"),
    ({"H": (2, 5), "K": (1, 3), "Ho": "H - K"}, r"dims\['Ho'\] = 'H - K' is 0 at H=2, K=2; "
                                                r"narrow the ranges"),
    ({"N": (0, 2)}, r"dims\['N'\] = \(0, 2\): give an inclusive range"),
    ({"N": (1, 2), "Ho": "N +"}, r"'N \+' is not a valid expression"),
])
def test_malformed_dims_name_the_derivation_and_the_fix(dims, message):
    with pytest.raises(DerivationError, match=message):
        parse_dims(dims, derivation="conv")


def test_a_layout_change_keeps_the_order_of_a_repeated_name():
    assert permutation(("N", "H", "W", "C"), ("N", "C", "H", "W"), derivation="d",
                       name="x") == (0, 3, 1, 2)
    assert permutation(("K", "K", "C", "F"), ("F", "C", "K", "K"), derivation="d",
                       name="w") == (3, 2, 0, 1)
