"""Every way of knowing the truth about a hand derivative, one module each behind one interface
(:class:`handgrad.oracles.base.Oracle`). :data:`REGISTRY` lists them in the order they run on a
case; :func:`handgrad.check.run_oracles` runs what a case asks for. A new oracle is a new module
with an ``ORACLE`` and one line here.

Gradients: ``autograd`` (the PyTorch reference), ``finite_differences``, ``complex_step``,
``taylor``, ``descent``. Hand JVPs and HVPs (the record's ``jvp`` and ``hvp``): ``jvp``,
``jvp_fd``, ``jvp_complex_step``, ``dot_product``, ``hvp``, ``hvp_fd``, ``symmetry``,
``linearity``, ``taylor2``. Derivation pages: ``equation`` (:mod:`handgrad.pages`). Their
numerical helpers are in :mod:`handgrad.oracles.numerics`.

May import the records and cases (and :mod:`handgrad.adapt`, for Function records); the
checking, the views and the grader import the oracles, never the other way round.
"""

from __future__ import annotations

from handgrad.oracles import (
    autograd,
    complex_step,
    descent,
    dot_product,
    equation,
    finite_differences,
    function,
    function_dtypes,
    hvp,
    hvp_fd,
    jvp,
    jvp_complex_step,
    jvp_fd,
    linearity,
    symmetry,
    taylor,
    taylor2,
)
from handgrad.oracles.base import Oracle

REGISTRY: tuple[Oracle, ...] = (
    autograd.ORACLE,
    finite_differences.ORACLE,
    complex_step.ORACLE,
    taylor.ORACLE,
    descent.ORACLE,
    jvp.ORACLE,
    jvp_fd.ORACLE,
    jvp_complex_step.ORACLE,
    dot_product.ORACLE,
    hvp.ORACLE,
    hvp_fd.ORACLE,
    symmetry.ORACLE,
    linearity.ORACLE,
    taylor2.ORACLE,
    function.ORACLE,
    function_dtypes.ORACLE,
    equation.ORACLE,
)

__all__ = ["REGISTRY", "Oracle"]
