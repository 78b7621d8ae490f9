"""The mutation catalogue: every operator applied to a representative of every derivation family;
every mutant caught, >= 90% diagnosed rightly. (The derivations' own structural mutants are
records with an expect_kind: the plugin rejects each with exactly that kind.)"""

from __future__ import annotations

import numpy as np
import pytest

import handgrad
from handgrad.cases import Case, sample_cases
from handgrad.check import check_case
from handgrad.mutations import CATALOGUE, Mutation, mutate
from handgrad.report import Report

FAST = ("contract", "forward", "autograd")


def representatives() -> list[handgrad.Derivation]:
    """The first right record of each family (doc x name prefix)."""
    reps = {}
    for r in handgrad.derivations():
        if r.expect == "pass":
            reps.setdefault((r.doc, r.name.split("-")[0]), r)
    return list(reps.values())


def judge(record: handgrad.Derivation, checks: tuple[str, ...] = FAST) -> tuple[bool, str]:
    """(caught, kind) over the first two cases; the report's kind is read off its most telling
    failing case (the minimal case cannot tell a slice from the whole)."""
    results = [r for c in sample_cases(record, 0, 2) for r in check_case(record, c, checks)]
    report = Report(record.name, results=results)
    return report.rejected, report.kind


WHOLE_NETWORKS = ("lenet5",)
"""Representatives whose every layer is a representative of its own (conv-table, meanpool,
rbf-map): the catalogue on the whole network takes half the test's time, so it runs in the slow
set (CI runs it), the layers in the default one."""


def run_catalogue(reps: list[handgrad.Derivation]) -> None:
    """Every catalogue operator on every representative: each mutant caught, >= 90% with the
    operator's kind."""
    rows, misses, mislabels = [], [], []
    mutants: list[tuple[handgrad.Derivation, tuple[str, ...]]] = []
    for rep in reps:
        for m in CATALOGUE:
            mutant = mutate(rep, m)
            if mutant is not None:
                mutants.append((mutant, m.kinds))
    assert mutants, [r.name for r in reps]
    for mutant, kinds in mutants:
        caught, kind = judge(mutant)
        rows.append((mutant.name, caught, kind, kinds))
        if not caught:
            misses.append(mutant.name)
        elif kind not in kinds:
            mislabels.append(f"{mutant.name}: diagnosed {kind!r}, expected one of {kinds}")
    accuracy = 1 - len(mislabels) / len(rows)
    print(f"\nmutants: {len(rows)}, caught: {len(rows) - len(misses)}, "
          f"label accuracy: {accuracy:.1%}")
    for line in mislabels:
        print("  mislabelled:", line)
    assert not misses, (f"mutants not caught (the first two cases of sample_cases at seed 0): "
                        f"{misses}")
    assert accuracy >= 0.9, "\n".join(mislabels)


def test_catalogue_is_caught_and_diagnosed():
    assert len(CATALOGUE) >= 20
    # The derivations' own mistakes are records with an expect_kind, whose kind the plugin's
    # [rejected] tests enforce exactly; here, the generic operators on every family.
    reps = [r for r in representatives() if r.name not in WHOLE_NETWORKS]
    assert len(reps) >= 15, [r.name for r in reps]
    run_catalogue(reps)


@pytest.mark.slow
def test_catalogue_on_the_whole_networks():
    reps = [r for r in representatives() if r.name in WHOLE_NETWORKS]
    assert [r.name for r in reps] == list(WHOLE_NETWORKS)
    run_catalogue(reps)


def test_one_wrong_element_in_the_largest_derivation_is_caught_by_directional_fd():
    """Directional finite differences alone must see one wrong entry of a big tensor."""
    def size(r):
        dims = {k: hi for k, (_, hi) in r.dims.items()}
        for c in r.cases:
            dims.update(c)
        from handgrad.cases import full_dims
        dims = full_dims(r, dims)
        return sum(int(np.prod(r.shape_of(k, dims))) for k in r.differentiable)

    largest = max((r for r in handgrad.derivations() if r.expect == "pass"), key=size)
    one = Mutation("one-element", "", ("entries",), "matrix", CATALOGUE[10].change)
    mutant = mutate(largest, one)
    dims = {k: hi for k, (_, hi) in largest.dims.items()}
    for c in largest.cases:
        dims.update(c)
    results = check_case(mutant, Case.of(dims, 7), ("fd",))
    fd_rows = [r for r in results if r.check == "fd"]
    assert fd_rows and any(r.status == "fail" for r in fd_rows), \
        "\n".join(f"{r.tensor}: {r.status} {r.message}" for r in fd_rows)


LINEAR_FAST = ("contract", "jvp", "jvp-fd", "dot-product", "hvp", "hvp-fd", "symmetry",
               "linearity")


def linear_records() -> list[handgrad.Derivation]:
    """The right records with a hand jvp or hvp: the corpus of tests/linear_records.py and
    the first of each family among the derivations."""
    from tests import linear_records

    reps = {}
    for r in handgrad.derivations():
        if r.expect == "pass" and (r.jvp is not None or r.hvp is not None):
            reps.setdefault((r.doc, r.name.split("-")[0]), r)
    return list(linear_records.RIGHT) + list(reps.values())


def equivalent(record: handgrad.Derivation, mutant: handgrad.Derivation, case: Case) -> bool:
    """Whether the mutant computes what the record does on the case (a sign flip of a zero
    Hessian): not a mutant there, so nothing for a checker to catch."""
    from handgrad.cases import build_inputs, upstream

    inputs = build_inputs(record, case)
    rng = np.random.default_rng(0)
    v = {k: rng.standard_normal(inputs[k].shape) for k in record.differentiable}
    out, cache = record.forward(**{k: x.copy() for k, x in inputs.items()})
    _, mutant_cache = mutant.forward(**{k: x.copy() for k, x in inputs.items()})
    if mutant.jvp is not record.jvp:
        a, b = record.jvp(v, cache), mutant.jvp(v, mutant_cache)
        a, b = (a[0] if isinstance(a, tuple) else a), (b[0] if isinstance(b, tuple) else b)
        return np.shape(a) == np.shape(b) and np.array_equal(a, b)
    dout = upstream(np.shape(out), case)
    a, b = record.hvp(dout, v, cache), mutant.hvp(dout, v, mutant_cache)
    return all(np.shape(a[k]) == np.shape(b[k]) and np.array_equal(a[k], b[k]) for k in a)


def test_linear_catalogue_is_caught_and_diagnosed():
    """Sign, factor 2 and 1/2, transposed, a dropped term and one wrong slice of every hand
    jvp and hvp: all caught; kinds right for >= 90%."""
    from handgrad.mutations import LINEAR_CATALOGUE, mutate_linear

    rows, misses, mislabels, equivalents = 0, [], [], []
    for record in linear_records():
        cases = sample_cases(record, 0, 2)
        for m in LINEAR_CATALOGUE:
            mutant = mutate_linear(record, m)
            if mutant is None:
                continue
            if all(equivalent(record, mutant, c) for c in cases):
                equivalents.append(mutant.name)
                continue
            results = [r for c in cases for r in check_case(mutant, c, LINEAR_FAST)]
            report = Report(mutant.name, results=results)
            rows += 1
            if not report.rejected:
                misses.append(mutant.name)
            elif report.kind not in m.kinds:
                mislabels.append(f"{mutant.name}: diagnosed {report.kind!r}, expected one of "
                                 f"{m.kinds}")
    accuracy = 1 - len(mislabels) / rows
    print(f"\nlinear mutants: {rows}, caught: {rows - len(misses)}, label accuracy: "
          f"{accuracy:.1%}; equivalent (not mutants on these cases): {equivalents}")
    for line in mislabels:
        print("  mislabelled:", line)
    assert rows >= 50
    assert not misses, f"mutants not caught: {misses}"
    assert accuracy >= 0.9, "\n".join(mislabels)
