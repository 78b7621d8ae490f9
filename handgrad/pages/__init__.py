"""Executable derivations: the tagged equations of a derivation page checked on a record's
cases, each judged on its own against autograd (a gradient) or the reference (a value).

Holds the loader (:mod:`~handgrad.pages.loader`: Markdown or notebook -> equations and the
Shapes table), the parser (:mod:`~handgrad.pages.parser`, a lark grammar), the values and
evaluator (:mod:`~handgrad.pages.values`, :mod:`~handgrad.pages.evaluate`, NumPy), the binding
of symbols to arrays (:mod:`~handgrad.pages.bind`) and the verdicts
(:mod:`~handgrad.pages.judge`). The entry point::

    from handgrad.pages import check_page
    results = check_page(record, case)  # list[EquationResult], one per tagged equation

May import NumPy, torch, lark, markdown-it and the bottom layer of handgrad (record, cases,
autograd, compare, diagnose, tolerances, errors); the oracle
:mod:`handgrad.oracles.equation` imports this package, never the other way round.
"""

from handgrad.pages.judge import EquationResult, check_page, page_of
from handgrad.pages.loader import Equation, Page, PageError, load_page

__all__ = ["Equation", "EquationResult", "Page", "PageError", "check_page", "load_page",
           "page_of"]
