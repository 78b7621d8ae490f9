"""The mutation catalogue run over the catalogue's pages: every mutant of every equation that
passes on its record, checked at its own tag (``python -m tests.pages.mutants_run`` prints the
figures; ``test_mutants_caught.py`` asserts them)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from handgrad.cases import sample_cases
from handgrad.discovery import derivations
from handgrad.pages import check_page, page_of
from handgrad.pages.mutate import Mutant, mutants, mutate_page

CASES = 2  # the minimal case and one with distinct sizes


@dataclass(frozen=True)
class Outcome:
    page: str
    tag: str
    mutant: Mutant
    statuses: frozenset  # (status, kind) over the cases at the mutant's tag
    others_unchanged: bool

    @property
    def caught(self) -> bool:
        return any(s == "fail" for s, _ in self.statuses)

    @property
    def kind_right(self) -> bool:
        kinds = {k for s, k in self.statuses if s == "fail"}
        return bool(kinds) and kinds <= set(self.mutant.kinds)

    @property
    def unchecked(self) -> bool:
        return all(s == "not-checkable" for s, _ in self.statuses)


def one_record_per_page(names: list[str] | None = None):
    """The first right record of each page (with a reference), by the page's path."""
    seen: dict[str, object] = {}
    for r in derivations():
        if r.expect != "pass" or r.reference is None or (names and r.name not in names):
            continue
        page = page_of(r)
        if page is not None and page.equations and page.path not in seen:
            seen[page.path] = r
    return list(seen.values())


def verdicts(record, cases) -> dict[str, set]:
    out: dict[str, set] = {}
    for case in cases:
        for e in check_page(record, case):
            out.setdefault(e.tag, set()).add((e.status, e.kind))
    return out


def run(records) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for record in records:
            page = page_of(record)
            text = Path(page.path).read_text()
            cases = sample_cases(record, 0, CASES)
            base = verdicts(record, cases)
            for eq in page.equations:
                if base.get(eq.tag) != {("pass", "")} or text.count(eq.text) != 1:
                    continue
                for m in mutants(eq.text):
                    path = Path(tmp) / Path(page.path).name
                    path.write_text(mutate_page(text, eq.text, m))
                    mutated = dataclasses.replace(record, page=str(path))
                    got = verdicts(mutated, cases)
                    others = all(got.get(t) == v for t, v in base.items() if t != eq.tag)
                    outcomes.append(Outcome(page.path, eq.tag, m,
                                            frozenset(got.get(eq.tag, set())), others))
    return outcomes


def figures(outcomes: list[Outcome]) -> str:
    lines = [f"{len(outcomes)} mutants; caught at their own tag {sum(o.caught for o in outcomes)}"
             f", with a kind their operator can cause {sum(o.kind_right for o in outcomes)}; "
             f"not checkable {sum(o.unchecked for o in outcomes)}; other tags unchanged "
             f"{sum(o.others_unchanged for o in outcomes)}"]
    by_op = Counter(o.mutant.operator for o in outcomes)
    for op, n in sorted(by_op.items()):
        mine = [o for o in outcomes if o.mutant.operator == op]
        lines.append(f"  {op:18} {n:4} caught {sum(o.caught for o in mine):4} kind right "
                     f"{sum(o.kind_right for o in mine):4}")
    return "\n".join(lines)


if __name__ == "__main__":
    outs = run(one_record_per_page(sys.argv[1:] or None))
    print(figures(outs))
    for o in outs:
        if not o.kind_right:
            print(f"{Path(o.page).name} ({o.tag}) {o.mutant.operator}: {o.mutant.change}: "
                  f"{sorted(o.statuses)}")
