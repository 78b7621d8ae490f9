"""handgrad: prove hand-derived backpropagation right or wrong.

    import handgrad
    handgrad.derivations()                      # the records of [tool.handgrad] paths
    handgrad.derivations(["grads/"])            # ... or of any folder or file
    report = handgrad.check("mlp-ce-tanh", seed=0, cases=4)
    report.passed, report.kind, report.results[0].as_dict()

    from handgrad import adapt                  # course-style code as records, one call each

The names are imported on first use (PEP 562): the pytest plugin, loaded by every pytest run
in an environment with handgrad installed, then costs nothing where no records are collected
(the engine imports torch).
"""

from __future__ import annotations

import importlib
import sys
import types

from handgrad.report import set_html_view  # the standard library only: costs nothing

__all__ = ["Derivation", "DerivationError", "Report", "Result", "check", "derivations"]

_HOMES = {"Derivation": "handgrad.record", "DerivationError": "handgrad.record",
          "Report": "handgrad.report", "Result": "handgrad.report",
          "derivations": "handgrad.discovery"}


class _Package(types.ModuleType):
    """``handgrad.check`` is the function, although a submodule has that name: importing the
    submodule binds the name on the package, and this property keeps it the function."""

    @property
    def check(self):
        from handgrad.check import check

        return check

    @check.setter
    def check(self, submodule) -> None:
        pass


sys.modules[__name__].__class__ = _Package


def _notebook_html(report) -> str:
    # The notebook view draws with matplotlib: imported when a notebook first shows a report.
    from handgrad.views.notebook import html

    return html(report)


set_html_view(_notebook_html)


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'handgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
