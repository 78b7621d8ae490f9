"""Results and reports: the one object that pytest, the CLI and the JSON output all render."""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass, field

STATUS_WORD = {"pass": "ok", "fail": "FAIL", "unreliable": "unreliable", "error": "ERROR",
               "skipped": "skipped"}


@dataclass(frozen=True)
class Result:
    """One check of one tensor in one case. ``passed`` is False only for "fail" and "error"."""

    derivation: str
    case: str
    data_seed: int
    dtype: str
    check: str
    tensor: str
    status: str
    kind: str = ""
    message: str = ""
    tag: str = ""
    max_abs: float = math.nan
    max_rel: float = math.nan
    worst_index: tuple[int, ...] = ()
    hand_value: float = math.nan
    ref_value: float = math.nan
    rtol: float = math.nan
    atol: float = math.nan

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "unreliable", "skipped")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["worst_index"] = list(self.worst_index)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


def reproduce_command(name: str, case: str, data_seed: int) -> str:
    return f"handgrad check {shlex.quote(name)} --dims {case} --data-seed {data_seed}"


@dataclass
class Report:
    """Every result for one derivation, plus the diagnosis of its failing cases."""

    derivation: str
    expect: str = "pass"
    erratum: str = ""
    doc: str = ""
    results: list[Result] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the hand derivation agrees with every oracle on every case."""
        return all(r.passed for r in self.results)

    @property
    def as_expected(self) -> bool:
        """Right records pass, records transcribing a known error are rejected."""
        return self.passed == (self.expect == "pass")

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.passed]

    @property
    def kind(self) -> str:
        """The diagnosis of the first failure: a broken contract first, then the first wrong
        gradient against float64 autograd (results come in backward order), then any other."""
        order = (("contract", "float64"), ("contract", "float32"), ("autograd", "float64"),
                 ("forward", "float64"), ("descent", "float64"), ("autograd", "float32"))
        for check, dtype in order:
            hit = next((r for r in self.failures if r.check == check and r.dtype == dtype), None)
            if hit:
                return hit.kind
        return self.failures[0].kind if self.failures else ""

    def render(self, only_failures: bool = False) -> str:
        """The per-tensor table; with ``only_failures``, the failing rows of the first failing
        case (every dtype), and a count of the rest."""
        rows = self.results
        rest = 0
        if only_failures and self.failures:
            first = self.failures[0]
            rows = [r for r in self.failures if (r.case, r.data_seed) == (first.case,
                                                                            first.data_seed)]
            rest = len(self.failures) - len(rows)
        elif only_failures:
            rows = []
        lines = [f"== {self.derivation}" + (f"  (transcribes: {self.erratum})" if self.erratum
                                              else "")]
        lines += render_table(rows)
        if rest:
            lines.append(f"  (+{rest} failing rows in other cases; check with --verbose)")
        lines += self.diagnoses
        verdict = "PASS" if self.passed else "FAIL"
        if self.expect == "reject":
            verdict = "REJECTED as expected" if not self.passed else "MISSED: expected a rejection"
        lines.append(f"verdict: {verdict}")
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:.2e}"


def render_table(results: list[Result]) -> list[str]:
    header = ("case", "dtype", "check", "tensor", "max abs", "max rel", "worst index",
              "hand", "ref", "rtol/atol", "verdict")
    rows = [header]
    for r in results:
        verdict = STATUS_WORD[r.status] + (f" [{r.kind}]" if r.kind else "")
        rows.append((
            f"{r.case} s={r.data_seed}", r.dtype, r.check,
            r.tensor + (f" ({r.tag})" if r.tag else ""),
            _fmt(r.max_abs), _fmt(r.max_rel),
            str(list(r.worst_index)) if r.worst_index else "-",
            _fmt(r.hand_value), _fmt(r.ref_value),
            "-" if not math.isfinite(r.rtol) else f"{r.rtol:.0e}/{r.atol:.0e}",
            verdict,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    seen = set()
    for r in results:
        evidence = r.message.split("; ")[-1]
        if (r.message and not r.passed or r.status in ("unreliable", "skipped")) \
                and (r.tensor, evidence) not in seen:
            seen.add((r.tensor, evidence))
            out.append(f"  {r.check} {r.tensor}: {r.message}")
    return out
