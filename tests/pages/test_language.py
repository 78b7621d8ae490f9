"""The page language unit by unit: the parser's precedence, each construct of the evaluator on
small seeded arrays against NumPy written out, shape errors, and what is not checkable."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from handgrad.pages.bind import Values, World
from handgrad.pages.evaluate import Evaluator
from handgrad.pages.loader import Page, load_page
from handgrad.pages.parser import BigOp, Op, ParseError, parse
from handgrad.pages.values import NotCheckableError, ShapeError

SEED = 7


def world(arrays: dict, grads: dict | None = None, shapes: dict | None = None,
          dims: dict | None = None, kwargs: dict | None = None, page_dims=()) -> World:
    page = Page("test.md", (), shapes or {k: "" for k in arrays}, tuple(page_dims))
    record = SimpleNamespace(inputs={}, intermediate_shapes={}, symbols={})
    values = Values(arrays, grads or {}, np.asarray(0.0), kwargs or {})
    return World(page, record, values, dims or {})


def value(w: World, text: str) -> np.ndarray:
    return Evaluator(w).value(parse(text)).data


@pytest.fixture
def arrays():
    rng = np.random.default_rng(SEED)
    return {"x": rng.standard_normal((3, 4)), "W": rng.standard_normal((2, 4)),
            "v": rng.standard_normal(4), "u": rng.standard_normal(2),
            "a": rng.standard_normal((3, 2))}


def test_juxtaposition_binds_tighter_than_odot():
    tree = parse(r"f'(z) \odot U^\top d")
    assert isinstance(tree, Op) and tree.op == "\\odot"
    assert isinstance(tree.right, Op) and tree.right.op == "juxt"


def test_a_sum_takes_the_rest_of_its_term():
    tree = parse(r"\frac{1}{m} \sum_i x_i + b")
    assert tree.op == "+" and isinstance(tree.left.right, BigOp)


def test_text_outside_the_grammar_is_a_parse_error():
    with pytest.raises(ParseError):
        parse(r"a = (b + c")


@pytest.mark.parametrize(("text", "expect"), [
    (r"x W^\top", lambda d: d["x"] @ d["W"].T),
    (r"W v", lambda d: d["W"] @ d["v"]),
    (r"u v^\top", lambda d: np.outer(d["u"], d["v"])),
    (r"v^\top v", lambda d: d["v"] @ d["v"]),
    (r"a \odot a - a \oslash (1 + a \odot a)",
     lambda d: d["a"] * d["a"] - d["a"] / (1 + d["a"] ** 2)),
    (r"x + \mathbf 1 v^\top", lambda d: d["x"] + d["v"]),
    (r"a \mathbf 1", lambda d: d["a"].sum(1)),
    (r"\sum_n x_n", lambda d: d["x"].sum(0)),
    (r"\sum_{n,j} x_{nj}", lambda d: d["x"].sum()),
    (r"\sum_j W_{ij} v_j", lambda d: d["W"] @ d["v"]),
    (r"\max_j x_{nj}", lambda d: d["x"].max(1)),
    (r"\sigma(a)", lambda d: 1 / (1 + np.exp(-d["a"]))),
    (r"\tanh^2(a)", lambda d: np.tanh(d["a"]) ** 2),
    (r"\mathrm{softmax}(a)", lambda d: np.exp(d["a"]) / np.exp(d["a"]).sum(1, keepdims=True)),
    (r"\log \sum_j e^{a_{nj}}", lambda d: np.log(np.exp(d["a"]).sum(1))),
    (r"\mathrm{diag}(u) a^\top", lambda d: np.diag(d["u"]) @ d["a"].T),
    (r"\lVert W \rVert_F^2", lambda d: (d["W"] ** 2).sum()),
    (r"\mathrm{sum}(x)", lambda d: d["x"].sum()),
    (r"[a > 0]", lambda d: (d["a"] > 0).astype(float)),
    (r"\big[\, a \;\big|\; a \,\big]", lambda d: np.concatenate([d["a"], d["a"]], 1)),
])
def test_each_construct_matches_numpy(arrays, text, expect):
    got = value(world(arrays), text)
    np.testing.assert_allclose(got, expect(arrays), rtol=1e-12,
                               err_msg=f"{text} seed={SEED}")


def test_time_steps_run_from_one_and_beyond_the_last_is_zero():
    z = np.arange(6.0).reshape(3, 2)
    w = world({"z": z}, shapes={"z_t": "(M)"}, dims={"T": 3})
    shifted = value(w, r"z_{t+1}")
    np.testing.assert_array_equal(shifted, [[2, 3], [4, 5], [0, 0]])
    np.testing.assert_array_equal(value(w, r"z_1"), [0, 1])


@pytest.mark.parametrize(("text", "fragment"), [
    (r"x W", "product of shapes"),
    (r"x + W", r"\+ of shapes"),
    (r"\sum_t x_n", "does not carry"),
])
def test_shape_errors_name_the_shapes(arrays, text, fragment):
    with pytest.raises(ShapeError, match=fragment):
        value(world(arrays), text)


@pytest.mark.parametrize(("text", "construct"), [
    (r"\dot x", "symbol"),
    (r"W \star x", "operator"),
    (r"\mathrm{rot180}(W)", "function"),
])
def test_outside_the_language_is_not_checkable_and_named(arrays, text, construct):
    with pytest.raises(NotCheckableError, match=construct):
        value(world(arrays), text)


def test_a_notebook_page_loads_its_markdown_cells(tmp_path):
    import json
    cells = [{"cell_type": "markdown", "source": ["## Shapes\n", "\n", "| symbol | shape |\n",
                                                   "|---|---|\n", "| $a$ | $(N, C)$ |\n"]},
             {"cell_type": "code", "source": ["$$x = 1 \\tag{C1}$$"]},
             {"cell_type": "markdown", "source": "Then\n\n$$b = a\n\\tag{K1}$$\n"}]
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps({"cells": cells, "nbformat": 4}))
    page = load_page(path)
    assert [(e.tag, e.cell) for e in page.equations] == [("K1", 2)]
    assert page.shapes == {"a": "(N, C)"}


def test_aligned_lines_are_equations_each(tmp_path):
    path = tmp_path / "page.md"
    path.write_text("$$\\begin{aligned}\na &= b + c \\tag{A1}\\\\\n d &= e\n &= f \\tag{A2}\n"
                    "\\end{aligned}$$\n")
    page = load_page(path)
    assert [(e.tag, e.text) for e in page.equations] == [("A1", "a = b + c"),
                                                        ("A2", "d = e = f")]
