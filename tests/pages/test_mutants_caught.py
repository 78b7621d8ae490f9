"""Mutants of the catalogue's pages caught at their own tag with a kind their operator can
cause, and no other tag's verdict changed (see mutants_run.py; the whole catalogue is slow)."""

from __future__ import annotations

import dataclasses

import pytest

from handgrad.discovery import find
from tests.pages import mutants_run


def only(record, tags):
    return dataclasses.replace(record, equations=tags)


@pytest.mark.parametrize("name, tags", [
    ("mlp-ce-tanh", ("M8", "M10", "M11", "M12")),
    ("rnn-tanh-ce", ("R9", "R11", "R14")),
])
def test_each_mutant_of_these_steps_is_caught_at_its_tag_with_its_kind(name, tags):
    outcomes = mutants_run.run([only(find(name), tags)])
    assert len(outcomes) >= 4 * len(tags)
    for o in outcomes:
        assert o.caught and o.kind_right, (o.tag, o.mutant.operator, o.mutant.change,
                                           sorted(o.statuses))
        assert o.others_unchanged, (o.tag, o.mutant.change)


@pytest.mark.slow
def test_the_catalogue_mutants():
    outcomes = mutants_run.run(mutants_run.one_record_per_page())
    print(mutants_run.figures(outcomes))
    assert all(o.others_unchanged for o in outcomes)
    # Every mutant that is evaluated and not caught is equivalent on the record's cases (a
    # transpose of a scalar, a term of another variant, a mask that is zero on this record):
    # it passes; none is called wrong with a kind its operator cannot cause more than rarely.
    wrong_kind = [o for o in outcomes if o.caught and not o.kind_right]
    assert len(wrong_kind) <= 0.02 * len(outcomes), [(o.tag, o.mutant.change) for o in wrong_kind]
