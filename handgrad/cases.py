"""Cases: which dimensions and which data a derivation is checked on, and the inputs they make."""

from __future__ import annotations

import importlib
import itertools
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from handgrad.record import Derivation

MAX_SEED = 2**32 - 1
# Sizes tried above a dimension's lower bound when looking for distinct ones: enough to make
# a dozen dimensions pairwise different, small enough to keep the cases fast.
FRESH_WINDOW = 12


@dataclass(frozen=True)
class Case:
    """One point to check: the sampled dimensions and the seed of the data drawn at them."""

    dims: tuple[tuple[str, int], ...]
    data_seed: int
    origin: str = "sampled"

    @property
    def dim_map(self) -> dict[str, int]:
        return dict(self.dims)

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.dims)

    @classmethod
    def of(cls, dims: Mapping[str, int], data_seed: int, origin: str = "given") -> Case:
        return cls(tuple(sorted((k, int(v)) for k, v in dims.items())), int(data_seed), origin)


def full_dims(record: Derivation, dims: Mapping[str, int]) -> dict[str, int]:
    """The sampled dims plus those the record derives from them."""
    out = dict(dims)
    if record.derive is not None:
        out.update(record.derive(out))
    return out


def _partners(record: Derivation) -> dict[str, set[str]]:
    """Per sampled dimension, the others it is easily confused with: those in one tensor with
    it, and those of the same range (the roles of Ho and Wo)."""
    shapes = [*record.inputs.values(), *record.intermediate_shapes.values(),
              *([record.output] if record.output else [])]
    out: dict[str, set[str]] = {k: set() for k in record.dims}
    for a, b in itertools.combinations(record.dims, 2):
        if record.dims[a] == record.dims[b] or any(a in s and b in s for s in shapes):
            out[a].add(b)
            out[b].add(a)
    return out


def dims_strategy(record: Derivation) -> st.SearchStrategy[dict[str, int]]:
    """Dimensions drawn in their ranges, steered towards sizes their partners (see
    :func:`_partners`) do not already have: a square or all-equal case hides a transpose or an
    axis mix-up. Any size of the range stays possible."""
    partners = _partners(record)

    @st.composite
    def steered(draw) -> dict[str, int]:
        out: dict[str, int] = {}
        for k, (lo, hi) in record.dims.items():
            taken = {out[p] for p in partners[k] if p in out}
            fresh = [v for v in range(lo, min(hi, lo + FRESH_WINDOW) + 1) if v not in taken]
            plain = st.integers(min_value=lo, max_value=hi)
            out[k] = draw(st.sampled_from(fresh) | plain if fresh and taken else plain)
        return out

    return steered()


@contextmanager
def _no_local_constants() -> Iterator[None]:
    """Hypothesis (6.131 on) mixes constants read from the caller's local modules into its
    draws and caches them under ``.hypothesis/constants`` in the working directory: the cases
    of a seed would then depend on which modules happen to be imported (a plain ``pytest`` run
    imports others than ``handgrad check``), and the disk access during pytest's collection
    warns (``HypothesisSideeffectWarning``) in a project that holds other code. handgrad's
    cases are a function of the seed alone: no local constants while it draws. Where a
    Hypothesis version lacks this machinery, nothing is changed."""
    try:
        providers = importlib.import_module("hypothesis.internal.conjecture.providers")
    except ImportError:
        providers = None
    scan = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    empty = getattr(providers, "Constants", None)
    if scan is None or cache is None or empty is None:
        yield
        return
    cache.clear()
    providers._get_local_constants = empty
    try:
        yield
    finally:
        providers._get_local_constants = scan
        cache.clear()


def _draw(strategy: st.SearchStrategy, seed: int, count: int) -> list:
    """``count`` examples of ``strategy``, reproducibly from ``seed`` (Hypothesis' generator)."""
    drawn: list = []

    @settings(max_examples=max(count, 1), database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(example) -> None:
        drawn.append(example)

    with _no_local_constants():
        collect()
    return drawn


def _equal_pairs(record: Derivation, dims: Mapping[str, int]) -> tuple[int, ...] | None:
    """How far ``dims`` is from distinct, least first: dimensions left at 1 that could be 3 or
    more (a size-1 axis cannot tell a sum from a copy, a mean from a sum over the batch); then
    equal pairs within one tensor (a square matrix, H = W) or of sampled dimensions of one
    range (those play one role: Ho and Wo); then the other dimensions left at 1 (where 1 or 2 is
    all the range holds, a 1 is the only way to tell two apart); then equal pairs anywhere,
    derived dims included. None when the record cannot derive its dims."""
    try:
        full = full_dims(record, dims)
    except Exception:  # noqa: BLE001 - a combination derive refuses is no candidate
        return None
    shapes = [*record.inputs.values(), *record.intermediate_shapes.values(),
              *([record.output] if record.output else [])]
    within = {frozenset((a, b)) for shape in shapes for a, b in
              itertools.combinations([d for d in shape if isinstance(d, str)], 2) if a != b}
    equal = [frozenset((a, b)) for a, b in itertools.combinations(sorted(full), 2)
             if full[a] == full[b]]
    alike = sum(len({record.dims.get(d) for d in p}) == 1 and p <= set(record.dims)
                for p in equal)
    ones = [k for k, v in dims.items() if v == 1]
    rare = sum(record.dims[k][1] >= 3 for k in ones)
    return (rare, alike + sum(p in within for p in equal), len(ones) - rare, len(equal))


# Above this many combinations of candidate sizes, coordinate descent replaces the search.
EXHAUSTIVE = 4096


def distinct_dims(record: Derivation) -> dict[str, int]:
    """Dimensions pairwise different and >= 2 where their ranges allow, derived ones included:
    non-square, batch >= 2, Ho != Wo. Where not every pair can differ, those of one role differ
    first (see :func:`_equal_pairs`); among equally distinct sizes, the smallest."""
    candidates = {k: sorted({lo, *range(max(lo, 2), min(hi, max(lo, 2) + FRESH_WINDOW) + 1)})
                  for k, (lo, hi) in record.dims.items()}

    def score(dims: Mapping[str, int]) -> tuple:
        pairs = _equal_pairs(record, dims)
        return (1, ()) if pairs is None else (0, pairs, sum(dims.values()))

    if math.prod(len(c) for c in candidates.values()) <= EXHAUSTIVE:
        combos = (dict(zip(candidates, values))
                  for values in itertools.product(*candidates.values()))
        return min(combos, key=score)
    taken: set[int] = set()
    out = {}
    for name, (lo, hi) in record.dims.items():
        choices = [v for v in candidates[name] if v >= 2 and v not in taken] or \
            [max(lo, min(hi, 2))]
        out[name] = choices[0]
        taken.add(out[name])
    best = score(out)
    improved = True
    while improved:
        improved = False
        for name in record.dims:
            for value in candidates[name]:
                trial = {**out, name: value}
                s = score(trial)
                if s < best:
                    out, best, improved = trial, s, True
    return out


def sample_cases(record: Derivation, seed: int = 0, count: int = 4) -> list[Case]:
    """The minimal case, a case of distinct dims, sampled ones, then the record's fixed cases.

    ``count`` counts the minimal, distinct and sampled cases together; the record's own
    ``cases`` come on top. A request for one case gets the distinct one: the minimal case is an
    edge case (one class makes every softmax gradient zero), not a check on its own. Data seeds
    derive from ``seed``, so the list is reproducible.
    """
    seeds = np.random.SeedSequence([seed, 0x68616E64]).generate_state(2 + len(record.cases))
    lows = {k: lo for k, (lo, _) in record.dims.items()}
    distinct = Case.of(distinct_dims(record), seeds[1], "distinct")
    cases = [Case.of(lows, seeds[0], "minimal"), distinct] if count >= 2 else [distinct]
    wanted = max(count - 2, 0)
    if wanted:
        pool = _draw(st.tuples(dims_strategy(record), st.integers(0, MAX_SEED)), seed, 4 * wanted)
        seen = {c.dims for c in cases}
        # The drawn shapes with the fewest needless 1s, then the fewest equal pairs of one role
        # first (stable: the draw's order breaks ties): a few cases as distinct as the draw
        # allows.
        pool.sort(key=lambda drawn: (_equal_pairs(record, drawn[0]) or (0, 0))[:2])
        fresh = [Case.of(d, s, "sampled") for d, s in pool]
        picked = [c for c in fresh if c.dims not in seen and not seen.add(c.dims)][:wanted]
        # A small dimension space runs out of new shapes: reuse shapes with new data then.
        picked += [c for c in fresh if c not in picked][: wanted - len(picked)]
        cases += picked
    fixed = [Case.of({**lows, **f}, s, "fixed") for f, s in zip(record.cases, seeds[2:])]
    return cases + fixed


def build_inputs(record: Derivation, case: Case, dtype: str = "float64") -> dict[str, np.ndarray]:
    """Fresh input arrays for ``case``: floats in ``dtype``, integer inputs as drawn."""
    dims = full_dims(record, case.dim_map)
    rng = np.random.default_rng(case.data_seed)
    out = {}
    for name in record.inputs:
        shape = record.shape_of(name, dims)
        sampler = record.samplers.get(name)
        arr = np.asarray(sampler(rng, shape, dims)) if sampler else rng.uniform(-1.0, 1.0, shape)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(dtype)
        out[name] = arr
    return out


def upstream(out_shape: tuple[int, ...], case: Case, dtype: str = "float64") -> np.ndarray:
    """The random dS/d(out): Gaussian for a tensor output, in [0.5, 2) for a scalar loss."""
    rng = np.random.default_rng([case.data_seed, 1])
    if out_shape == ():
        return np.asarray(rng.uniform(0.5, 2.0), dtype=dtype)
    return rng.standard_normal(out_shape).astype(dtype)
