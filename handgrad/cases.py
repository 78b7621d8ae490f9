"""Cases: which dimensions and which data a derivation is checked on, and the inputs they make."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from handgrad.record import Derivation

MAX_SEED = 2**32 - 1


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


def dims_strategy(record: Derivation) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(
        {k: st.integers(min_value=lo, max_value=hi) for k, (lo, hi) in record.dims.items()}
    )


def _draw(strategy: st.SearchStrategy, seed: int, count: int) -> list:
    """``count`` examples of ``strategy``, reproducibly from ``seed`` (Hypothesis' generator)."""
    drawn: list = []

    @settings(max_examples=max(count, 1), database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(example) -> None:
        drawn.append(example)

    collect()
    return drawn


def distinct_dims(record: Derivation) -> dict[str, int]:
    """Dimensions pairwise different and >= 2 where their ranges allow: non-square, batch >= 2."""
    taken: set[int] = set()
    out = {}
    for name, (lo, hi) in record.dims.items():
        choices = [v for v in range(max(lo, 2), hi + 1) if v not in taken] or [max(lo, min(hi, 2))]
        out[name] = choices[0]
        taken.add(out[name])
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
