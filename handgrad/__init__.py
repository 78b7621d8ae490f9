"""handgrad: prove hand-derived backpropagation right or wrong.

    import handgrad
    handgrad.derivations()                      # every discovered Derivation record
    report = handgrad.check("mlp-ce-tanh", seed=0, cases=4)
    report.passed, report.results[0].as_dict()
"""

from handgrad.check import check
from handgrad.discovery import derivations
from handgrad.record import Derivation, DerivationError
from handgrad.report import Report, Result

__all__ = ["Derivation", "DerivationError", "Report", "Result", "check", "derivations"]
