"""The mutation catalogue: every operator applied to a representative of every derivation family;
every mutant caught, >= 90% diagnosed rightly. (The derivations' own structural mutants are
records with an expect_kind: the plugin rejects each with exactly that kind.)"""

from __future__ import annotations

import numpy as np

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


def test_catalogue_is_caught_and_diagnosed():
    assert len(CATALOGUE) >= 20
    rows, misses, mislabels = [], [], []
    # The derivations' own mistakes are records with an expect_kind, whose kind the plugin's
    # [rejected] tests enforce exactly; here, the generic operators on every family.
    mutants: list[tuple[handgrad.Derivation, tuple[str, ...]]] = []
    for rep in representatives():
        for m in CATALOGUE:
            mutant = mutate(rep, m)
            if mutant is not None:
                mutants.append((mutant, m.kinds))
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
    assert not misses, f"mutants not caught: {misses}"
    assert accuracy >= 0.9, "\n".join(mislabels)


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
