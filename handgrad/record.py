"""The derivation record: everything the engine needs to know about one hand-derived backward.

How to add a derivation to this repository (no edit to the engine, ``conftest.py`` or
``tests/``; ``handgrad new NAME`` writes the three files from a template):

1. ``derivations/<stem>.md``: the derivation itself. Sections *Shapes*, *Forward*, *Backward*,
   *Gradients* and *Differences from the source* (a record with ``source`` set) or *Common
   mistakes* (one without); every equation carries a tag such as ``\\tag{M7}`` that the code
   comments and the record's ``tags`` cite.
2. ``reference/<stem>.py``: the same computation written independently in PyTorch.
3. ``derivations/<stem>.py``: the NumPy ``forward`` and ``backward`` and one or more
   :class:`Derivation` records at module level (a module-level list or tuple of records counts
   too). Discovery imports every ``*.py`` of the configured paths and collects them.

Code that lives elsewhere needs only a record file in its own folder (``handgrad check --path``),
the Markdown and the tags being optional there; :mod:`handgrad.adapt` makes the record from
course-style code in one call.

The calling convention, for a record ``r``:

``out, cache = r.forward(**inputs)``
    ``inputs`` maps every name of ``r.inputs`` to a NumPy array (fresh copies: the engine checks
    that neither function writes into them). ``out`` is the loss (a scalar) or any array. Keep
    the dtype of the floating inputs (float64 or float32): write ``0.5 * x``, not
    ``np.float64(0.5) * x``.
``grads = r.backward(dout, cache)``
    ``dout`` is dS/d(out) for the scalar S the engine differentiates: ``S = sum(dout * out)`` with a
    random ``dout`` of ``out``'s shape (a 0-d array for a scalar loss), so a backward that ignores
    its upstream gradient is caught. ``grads`` is a dict keyed by name: one entry per
    differentiable input (dS/d input, same shape) and one per name in ``r.intermediates``
    (dS/d intermediate, same shape as the tensor the reference returns under that name).
``tangent = r.jvp(tangents, cache)`` (optional)
    The hand forward-mode derivative: ``tangents`` maps every differentiable input to a direction
    (same shape and dtype as the input), ``cache`` is the forward's. Returns the tangent of
    ``out`` (same shape), or ``(tangent, {name: tangent})`` with the tangent of every name in
    ``r.jvp_intermediates``.
``hv = r.hvp(dout, v, cache)`` (optional)
    The hand Hessian-vector product of the same scalar ``S = sum(dout * out)`` as ``backward``
    (a random ``dout``): ``v`` maps every differentiable input to a direction; ``hv`` maps each
    to ``(H v)`` for it, where ``H`` is the Hessian of ``S`` in all differentiable inputs at once.
``r.reference(**tensors)``
    The PyTorch program. ``tensors`` are float tensors (leaves that require grad for the
    differentiable inputs) and integer tensors for integer inputs. Returns ``out`` or
    ``(out, {name: tensor})`` with every name of ``r.intermediates`` bound to the tensor in its
    graph whose gradient the hand backward reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handgrad import shapes
from handgrad.errors import DerivationError

__all__ = ["CHECKS", "Derivation", "DerivationError", "validate"]

GRADIENT_CHECKS = ("contract", "forward", "autograd", "fd", "complex-step", "taylor", "descent",
                   "equation")
# The checks of a hand jvp and of a hand hvp (see the fields ``jvp`` and ``hvp``); they run only
# on records that have one.
JVP_CHECKS = ("jvp", "jvp-fd", "jvp-complex-step", "dot-product", "linearity")
HVP_CHECKS = ("hvp", "hvp-fd", "symmetry", "linearity", "taylor2")
LINEAR_CHECKS = tuple(dict.fromkeys(JVP_CHECKS + HVP_CHECKS))
CHECKS = GRADIENT_CHECKS + LINEAR_CHECKS
DTYPES = ("float64", "float32")
SKIPPABLE = ("equation", "fd", "complex-step", "taylor", "descent", "float32", "jvp-fd",
             "jvp-complex-step", "dot-product", "hvp-fd", "symmetry", "linearity", "taylor2")

Sampler = Callable[[np.random.Generator, tuple[int, ...], Mapping[str, int]], np.ndarray]


@dataclass(frozen=True, repr=False)
class Derivation:
    """One hand-derived backward, described for the engine.

    Fields
    ------
    name:
        Unique, used on the command line (``handgrad check mlp-ce-tanh``).
    forward, backward, reference:
        See the module docstring for the calling convention. ``forward`` and ``backward`` may
        be None for a record with a ``page`` (or ``doc``) and a reference: the page's equations
        are then checked alone, before any code exists (derive, check, then transcribe).
        ``reference`` may be None: the record is then checked by finite differences, the
        complex step, the Taylor test and the contract, and the report says what needs a
        reference (autograd, the intermediates, the float32 values).
    inputs:
        Symbolic shape of every input: ``{"x": ("N", "d"), "W1": ("M", "d"), "y": ("N",)}``, or
        the same written compactly: ``"x: N d, W1: M d, y: N"``. Entries are dimension names or
        integer literals.
    dims:
        Inclusive range of each sampled dimension: ``{"N": (1, 8)}``. A fixed size is ``(k, k)``
        or ``k``; a size derived from others can be an expression, ``{"Ho": "H - K + 1"}``
        (names, integers, ``+ - * // %``, parentheses, min, max; see :mod:`handgrad.shapes`).
        The lower bounds form the minimal case, which is always checked.
    derive:
        Optional ``dims -> dims`` adding dimensions that depend on the sampled ones
        (``H = Ho + K - 1``), so that no sampled case is ever invalid.
    nondiff:
        Inputs without a gradient (labels, connection tables, fixed constants).
    intermediates:
        Names of the intermediates whose gradient ``backward`` reports, in the order the backward
        computes them (the first is nearest the loss). Compared against autograd one by one, and
        used to localise the first wrong step.
    intermediate_shapes:
        Optional symbolic shapes of intermediates, like ``inputs``: ``{"h": ("T", "B", "M")}``.
        They name the axes in diagnoses ("only slices [0, 1] along axis 0 (T)").
    tags:
        Gradient key (input or intermediate) -> equation tag in the ``.md`` (``"M7"``).
    samplers:
        Custom input generators ``(rng, shape, dims) -> array`` (labels, tables, scaled weights).
        Other float inputs are drawn uniform on [-1, 1): bounded, never a repeated fill.
    kink_distance:
        Optional ``cache -> float``: the distance from the sampled point to the nearest
        non-differentiable point of the forward (``min |pre-activation|`` for relu). The engine
        redraws data closer than ``kink_margin`` so that finite differences do not straddle a kink.
    kink_margin:
        See ``kink_distance``.
    variant:
        Free-form description of the options baked into this record (``{"loss": "ce"}``).
    tolerances:
        Per-dtype overrides of :data:`handgrad.tolerances.DEFAULT`, e.g.
        ``{"float32": {"rtol": 3e-4}}``. Say why in a comment next to the record.
    cases:
        Extra dims to check always (the paper's size), merged over the sampled defaults.
    bench:
        Dims at which to benchmark the hand forward+backward against autograd.
    fd:
        ``"auto"`` (per-element central differences when the differentiable inputs hold at most
        ``fd_element_limit`` entries, directional otherwise), ``"elementwise"`` or
        ``"directional"``.
    complex_step:
        True when ``forward`` accepts complex inputs holomorphically (no abs, max, comparisons on
        the differentiable path), which allows complex-step differentiation.
    update:
        Optional hand-written update rule ``(params, grads, lr) -> params`` for scalar losses;
        checked against ``torch.optim.SGD`` on the reference. ``None`` means ``p - lr * g``.
    jvp:
        Optional hand Jacobian-vector product ``(tangents, cache) -> tangent`` (see the module
        docstring). Checked by ``"jvp"`` (against ``torch.func.jvp`` of the reference, float64
        and float32), ``"jvp-fd"`` (central differences of the forward along the tangent,
        float64), ``"jvp-complex-step"`` (where ``complex_step``), ``"dot-product"``
        (``<u, J v> = <J^T u, v>`` against the hand backward, no reference needed) and
        ``"linearity"`` (linear in the tangent).
    jvp_intermediates:
        Names of intermediates whose tangent ``jvp`` reports, in the order the forward computes
        them (the first is nearest the inputs); the reference returns them under the same names
        in its ``(out, {name: tensor})`` dict. They localise the first wrong tangent.
    hvp:
        Optional hand Hessian-vector product ``(dout, v, cache) -> {name: Hv}`` (see the module
        docstring). Checked by ``"hvp"`` (against the reference's double backward, or
        ``hvp_reference``; float64 and float32), ``"hvp-fd"`` (central differences of the
        record's own backward along ``v``, float64, no reference needed), ``"symmetry"``
        (``<u, H v> = <v, H u>``), ``"linearity"`` and ``"taylor2"`` (the second-order Taylor
        remainder falls like ``h^3``). A record with ``hvp`` or ``jvp`` still has ``backward``.
    hvp_reference:
        Optional ``(tensors, dout, v) -> {name: tensor}`` computing the curvature product in
        PyTorch when it is not the Hessian of the reference (a Gauss-Newton product); such a
        record skips ``"hvp-fd"`` and ``"taylor2"``, which differentiate the record's own
        backward and forward and so test the Hessian.
    skip:
        Checks that do not apply, each with the reason: ``{"taylor": "why"}``. Only
        finite differences, the complex step, the Taylor test, the descent step and the checks of
        ``jvp`` and ``hvp`` that need no reference (``"jvp-fd"``, ``"jvp-complex-step"``,
        ``"dot-product"``, ``"hvp-fd"``, ``"symmetry"``, ``"linearity"``, ``"taylor2"``) can be
        skipped (an oracle that differentiates the forward cannot judge a backward that departs
        from the forward's gradient on purpose, like truncated BPTT), and the whole float32 pass
        (``{"float32": "accumulates in float64 like the course code"}``) for code that supports
        float64 only. Reported as skipped rows.
    strict_dtype:
        False (default): a float32 input that gives float64 gradients is a warning, compared at
        the float32 tolerance, and the verdict stays pass. True: the gradient's dtype must equal
        the input's (promotion fails the contract).
    zero_grads:
        Gradients that are zero on purpose, each with the reason: ``{"b": "the forward never
        adds b"}``. Any other differentiable input or intermediate whose reference gradient is
        identically zero in every checked case makes the record ``vacuous`` (not a pass: no
        checked case could have caught an error in it).
    writes:
        What backward changes in its cache by design, by name (an attribute, a dict key) or by
        the path a report shows (``cache[2]``): a step counter it decrements per time step,
        accumulators it sums into, an optimizer's momentum buffer. Other changes to the cache
        are ``mutated-cache`` when a second backward on the same cache would return other
        gradients (``x *= mask``), and a warning when it would not; a change to the forward's
        output or to an input is always a failure (the next or the previous layer holds it).
    output_names:
        For an ``out`` that joins several outputs (flattened and concatenated, as
        :func:`handgrad.adapt.layer` does with ``outputs=``): their names in order, so that a
        message can say which output's upstream gradient backward wrote into. Adapters set it.
    output:
        Optional symbolic shape of ``out`` (``("N", "M")``; ``()`` for a scalar loss). When the
        NumPy forward and the reference disagree on the output's shape, it says which is wrong.
    flops:
        Optional ``dims -> float``: floating-point operations of the hand forward and backward at
        ``dims`` (for the benchmark summary's GFLOP/s and roof fraction).
    figures:
        Optional pictures for the report, ``{"title": fn}`` with ``fn(inputs) -> (hand, ref)``
        two 2-D arrays drawn side by side (the RNN's table dL_t/dz_k, T x T), computed on a
        case's float64 inputs.
    source:
        The section of the source write-up this derivation corrects (``"bp-derivation.txt 2"``).
        Its Markdown then needs *Differences from the source*; without a source, *Common
        mistakes*.
    expect:
        ``"pass"``, or ``"reject"`` for a record that transcribes a known error (a mistake of the
        source write-up): the harness must reject it, and a pass is reported as a miss.
    erratum:
        For ``expect="reject"``: what error is transcribed, citing the source.
    expect_kind:
        For ``expect="reject"``: the diagnosis kind the harness should give (``"sign"``,
        ``"factor"``, ``"flipped"``, ...; see ``handgrad/diagnose.py``); empty when unsure.
    doc:
        Path of the derivation's Markdown; discovery fills it from the module's name.
    page:
        The derivation page whose tagged equations the ``"equation"`` check evaluates (a
        Markdown file or a Jupyter notebook); empty: ``doc``. See :mod:`handgrad.pages` and the
        language in ``derivations/notation.md``.
    symbols:
        Page symbol (LaTeX) -> the name of the input or reference intermediate it denotes, for
        letters the page and the code spell differently: ``{"h": "z", r"\\hat y": "yhat"}``.
        Symbols spelled alike (``W_1`` and ``W1``, ``h_0`` and ``h0``) need no entry.
    equations:
        The tags of the page's equations this record follows (a variant of a page with several,
        like the MLP's cross-entropy and L2 equations); None: every tagged equation. The others
        are reported as skipped, with the reason.
    origin:
        The file that defines the record; discovery fills it.
    """

    name: str
    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[[np.ndarray, Any], Mapping[str, np.ndarray]]
    reference: Callable[..., Any] | None
    inputs: Mapping[str, tuple[str | int, ...]]
    dims: Mapping[str, tuple[int, int]]
    derive: Callable[[Mapping[str, int]], Mapping[str, int]] | None = None
    nondiff: frozenset[str] = frozenset()
    intermediates: tuple[str, ...] = ()
    intermediate_shapes: Mapping[str, tuple[str | int, ...]] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    samplers: Mapping[str, Sampler] = field(default_factory=dict)
    kink_distance: Callable[[Any], float] | None = None
    kink_margin: float = 1e-3
    variant: Mapping[str, str] = field(default_factory=dict)
    tolerances: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cases: tuple[Mapping[str, int], ...] = ()
    bench: tuple[Mapping[str, int], ...] = ()
    fd: str = "auto"
    fd_element_limit: int = 600
    complex_step: bool = False
    update: Callable[[dict, dict, float], dict] | None = None
    skip: Mapping[str, str] = field(default_factory=dict)
    jvp: Callable[[Mapping[str, np.ndarray], Any], Any] | None = None
    jvp_intermediates: tuple[str, ...] = ()
    hvp: Callable[[np.ndarray, Mapping[str, np.ndarray], Any], Mapping[str, np.ndarray]] | None \
        = None
    hvp_reference: Callable[..., Mapping[str, Any]] | None = None
    strict_dtype: bool = False
    zero_grads: Mapping[str, str] = field(default_factory=dict)
    writes: frozenset[str] = frozenset()
    output_names: tuple[str, ...] = ()
    output: tuple[str | int, ...] | None = None
    flops: Callable[[Mapping[str, int]], float] | None = None
    figures: Mapping[str, Callable[[Mapping[str, Any]], tuple[Any, Any]]] = field(
        default_factory=dict)
    source: str = ""
    expect: str = "pass"
    erratum: str = ""
    expect_kind: str = ""
    doc: str = ""
    origin: str = ""
    page: str = ""
    symbols: Mapping[str, str] = field(default_factory=dict)
    equations: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nondiff", frozenset(self.nondiff))
        object.__setattr__(self, "intermediates", tuple(self.intermediates))
        object.__setattr__(self, "jvp_intermediates", tuple(self.jvp_intermediates))
        object.__setattr__(self, "writes", frozenset(
            [self.writes] if isinstance(self.writes, str) else self.writes))
        _read_compact_forms(self)
        problems = validate(self)
        if problems:
            raise DerivationError(
                f"derivation {self.name!r} is malformed:\n  - " + "\n  - ".join(problems)
            )

    def __repr__(self) -> str:
        return f"Derivation({self.name!r})"

    @property
    def differentiable(self) -> tuple[str, ...]:
        """The inputs that get a gradient, in declaration order."""
        return tuple(k for k in self.inputs if k not in self.nondiff)

    @property
    def grad_keys(self) -> frozenset[str]:
        """The exact key set ``backward`` must return."""
        return frozenset(self.differentiable) | frozenset(self.intermediates)

    def shape_of(self, name: str, dims: Mapping[str, int]) -> tuple[int, ...]:
        return self.shape_of_symbolic(self.inputs[name], dims)

    @staticmethod
    def shape_of_symbolic(shape: tuple[str | int, ...], dims: Mapping[str, int]
                          ) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else int(dims[d]) for d in shape)


def _read_compact_forms(r: Derivation) -> None:
    """Compact shapes (``"x: N D"``) and expression dims (``{"Ho": "H - K + 1"}``) turned into
    the plain fields; an expression becomes part of ``derive``."""
    if isinstance(r.inputs, str):
        object.__setattr__(r, "inputs", shapes.parse_shapes(r.inputs, derivation=r.name))
    if isinstance(r.intermediate_shapes, str):
        object.__setattr__(r, "intermediate_shapes", shapes.parse_shapes(
            r.intermediate_shapes, derivation=r.name, what="intermediate_shapes"))
    if isinstance(r.output, str):
        object.__setattr__(r, "output", shapes.parse_shape(r.output, derivation=r.name,
                                                            what="output"))
    if isinstance(r.dims, Mapping) and any(isinstance(v, int | str) for v in r.dims.values()):
        spec = shapes.parse_dims(r.dims, derivation=r.name)
        object.__setattr__(r, "dims", dict(spec.ranges))
        if spec.derived:
            given = r.derive

            def derive(dims: Mapping[str, int]) -> dict[str, int]:
                out = dict(given(dims)) if given is not None else {}
                return {**out, **spec.derive({**dims, **out})}

            object.__setattr__(r, "derive", derive)


def validate(r: Derivation) -> list[str]:
    """Every way the record is malformed, each with what to change."""
    problems = []
    if not isinstance(r.name, str) or not r.name or any(c.isspace() for c in r.name):
        problems.append("name must be a non-empty string without spaces")
    page_only = r.backward is None and r.reference is not None and bool(r.page or r.doc)
    for fn in ("forward", "backward", "reference"):
        if page_only and fn in ("forward", "backward") and getattr(r, fn) is None:
            continue  # a page checked before its code exists: derive, check, then transcribe
        if not callable(getattr(r, fn)) and not (fn == "reference" and r.reference is None):
            problems.append(f"{fn} must be callable, got {type(getattr(r, fn)).__name__}")
    if not r.inputs:
        problems.append("inputs is empty: declare the symbolic shape of every input")
    named_dims = set()
    for key, shape in r.inputs.items():
        if not isinstance(shape, tuple):
            problems.append(f"inputs[{key!r}] must be a tuple of dimension names or ints")
            continue
        named_dims |= {d for d in shape if isinstance(d, str)}
    for key, rng in r.dims.items():
        if (
            not isinstance(rng, tuple)
            or len(rng) != 2
            or not all(isinstance(v, int) for v in rng)
            or not 1 <= rng[0] <= rng[1]
        ):
            problems.append(f"dims[{key!r}] must be an inclusive range (lo, hi), 1 <= lo <= hi")
    if r.derive is None:
        missing = sorted(named_dims - set(r.dims))
        if missing:
            problems.append(f"dimensions {missing} appear in inputs but have no range in dims")
    unknown = sorted(set(r.nondiff) - set(r.inputs))
    if unknown:
        problems.append(f"nondiff names {unknown}, which are not inputs")
    clash = sorted(set(r.intermediates) & set(r.inputs))
    if clash:
        problems.append(f"intermediates {clash} share a name with an input: rename one")
    if len(set(r.intermediates)) != len(r.intermediates):
        problems.append("intermediates holds a name twice")
    stray_shapes = sorted(set(r.intermediate_shapes) - set(r.intermediates)
                          - set(r.jvp_intermediates))
    if stray_shapes:
        problems.append(f"intermediate_shapes names {stray_shapes}, which are not intermediates")
    stray_tags = sorted(set(r.tags) - r.grad_keys - set(r.jvp_intermediates))
    if stray_tags:
        problems.append(f"tags name {stray_tags}, which are neither differentiable inputs nor "
                        "intermediates")
    problems += _linearisation_problems(r)
    stray_zero = sorted(set(r.zero_grads) - r.grad_keys)
    if stray_zero:
        problems.append(f"zero_grads names {stray_zero}, which are neither differentiable inputs "
                        "nor intermediates")
    if any(not isinstance(v, str) or not v.strip() for v in r.zero_grads.values()):
        problems.append("zero_grads must give the reason for each zero gradient")
    stray_samplers = sorted(set(r.samplers) - set(r.inputs))
    if stray_samplers:
        problems.append(f"samplers name {stray_samplers}, which are not inputs")
    if r.fd not in ("auto", "elementwise", "directional"):
        problems.append("fd must be 'auto', 'elementwise' or 'directional'")
    bad_skips = sorted(set(r.skip) - set(SKIPPABLE))
    needs = {"jvp": set(JVP_CHECKS) - set(HVP_CHECKS), "hvp": set(HVP_CHECKS) - set(JVP_CHECKS),
             "jvp or hvp": {"linearity"}}
    for what, names in needs.items():
        present = any(getattr(r, f, None) is not None for f in what.split(" or "))
        pointless = sorted(set(r.skip) & names) if not present else []
        if pointless:
            problems.append(f"skip names {pointless}, checks of a hand {what}, but the record has "
                            f"no {what}: remove them from skip")
    if bad_skips:
        problems.append(f"skip names {bad_skips}; only {list(SKIPPABLE)} can be skipped")
    if r.expect not in ("pass", "reject"):
        problems.append("expect must be 'pass' or 'reject'")
    if r.expect == "reject" and not r.erratum:
        problems.append("a record with expect='reject' must say in erratum which error it "
                        "transcribes")
    for dtype, over in r.tolerances.items():
        if dtype not in ("float64", "float32"):
            problems.append(f"tolerances key {dtype!r} must be 'float64' or 'float32'")
        elif not isinstance(over, Mapping):
            problems.append(f"tolerances[{dtype!r}] must map 'rtol'/'atol' to numbers")
    return problems


def _linearisation_problems(r: Derivation) -> list[str]:
    """What is wrong with the fields of a hand jvp or hvp."""
    problems = []
    for fn in ("jvp", "hvp", "hvp_reference"):
        value = getattr(r, fn)
        if value is not None and not callable(value):
            problems.append(f"{fn} must be callable or None, got {type(value).__name__}")
    if not all(isinstance(k, str) for k in r.jvp_intermediates):
        problems.append("jvp_intermediates must be a tuple of names (strings)")
        return problems
    if r.jvp_intermediates and r.jvp is None:
        problems.append("jvp_intermediates is set but the record has no jvp: add jvp(tangents, "
                        "cache) returning (tangent, {name: tangent}), or remove it")
    clash = sorted(set(r.jvp_intermediates) & set(r.inputs))
    if clash:
        problems.append(f"jvp_intermediates {clash} share a name with an input: rename one")
    if len(set(r.jvp_intermediates)) != len(r.jvp_intermediates):
        problems.append("jvp_intermediates holds a name twice")
    if r.hvp_reference is not None and r.hvp is None:
        problems.append("hvp_reference is set but the record has no hvp to check against it")
    return problems
