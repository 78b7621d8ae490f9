"""The measured gradcheck / gradgradcheck columns of the README table of "Custom autograd
Functions": what torch.autograd.gradcheck and gradgradcheck (float64, default tolerances) say
about every Function record, right and wrong, of ``tests/corpus_functions.py`` and
``derivations/fn_*.py``, next to handgrad's verdict and kind on the same record. Run from the
repository root: ``PYTHONPATH=. python docs/compare_gradcheck_functions.py``."""

from torch.autograd import gradcheck, gradgradcheck

import handgrad
from handgrad.adapt.functions import function_of
from handgrad.cases import Case, build_inputs


def verdict(check, function, args) -> str:
    try:
        return "pass" if check(function.apply, args, raise_exception=True) else "fail"
    except Exception as exc:  # noqa: BLE001 - what gradcheck raises is the finding
        return f"raises {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"


def main() -> None:
    records = [r for r in handgrad.derivations() if function_of(r) is not None]
    records += __import__("tests.corpus_functions", fromlist=["RIGHT"]).RIGHT
    records += __import__("tests.corpus_functions", fromlist=["WRONG"]).WRONG
    for record in records:
        info = function_of(record)
        dims = {k: max(lo, min(hi, 3)) for k, (lo, hi) in record.dims.items()}
        tensors = info.tensors(build_inputs(record, Case.of(dims, 0)))
        args = info.arguments(tensors)
        report = handgrad.check(record, cases=2, shrink=False)
        print(f"{record.name}: handgrad {report.status} [{report.kind}] | gradcheck "
              f"{verdict(gradcheck, info.function, args)} | gradgradcheck "
              f"{verdict(gradgradcheck, info.function, args)}")


if __name__ == "__main__":
    main()
