"""handgrad: prove hand-derived backpropagation right or wrong.

    import handgrad
    handgrad.derivations()                      # the records of [tool.handgrad] paths
    handgrad.derivations(["grads/"])            # ... or of any folder or file
    report = handgrad.check("mlp-ce-tanh", seed=0, cases=4)
    report.passed, report.kind, report.results[0].as_dict()

    from handgrad import adapt                  # course-style code as records, one call each
"""

from handgrad.check import check
from handgrad.discovery import derivations
from handgrad.record import Derivation, DerivationError
from handgrad.report import Report, Result, set_html_view


def _notebook_html(report: Report) -> str:
    # The notebook view draws with matplotlib: imported when a notebook first shows a report.
    from handgrad.notebook import html

    return html(report)


set_html_view(_notebook_html)

__all__ = ["Derivation", "DerivationError", "Report", "Result", "check", "derivations"]
