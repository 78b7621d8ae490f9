"""Results and reports: the one object that pytest, the CLI and the JSON output all render."""

from __future__ import annotations

import math
import shlex
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

STATUS_WORD = {"pass": "ok", "fail": "FAIL", "unreliable": "unreliable", "error": "ERROR",
               "skipped": "skipped", "warning": "warn", "vacuous": "VACUOUS"}
# A result that passes: "unreliable" means the oracle could not decide (a kink, round-off) and
# says why; "warning" means allowed but worth saying (float64 answers to float32 inputs).
PASSING = ("pass", "unreliable", "skipped", "warning")


@dataclass(frozen=True)
class Result:
    """One check of one tensor in one case. ``passed`` is False for "fail", "error" and
    "vacuous" (no checked case could have caught an error in that tensor)."""

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
    live: float = math.nan  # share of entries whose reference gradient is non-zero

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    @property
    def dims(self) -> dict[str, int]:
        return case_dims(self.case)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["worst_index"] = [int(i) for i in self.worst_index]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in d.items()}


def case_dims(case: str) -> dict[str, int]:
    """``"N=2,d=3"`` -> {"N": 2, "d": 3} (empty for a case that is not a dims string)."""
    try:
        return {k: int(v) for k, v in (p.split("=") for p in case.split(",") if p)}
    except ValueError:
        return {}


def informativeness(case: str) -> tuple[int, int, int]:
    """How much a case can tell: the number of dimensions above 1 (a size-1 axis cannot tell a
    slice from the whole, a sum from a copy), then of distinct sizes (a square matrix cannot
    tell a transpose by its shape), then the total of the dimensions."""
    dims = case_dims(case)
    return (sum(v > 1 for v in dims.values()), len(set(dims.values())), sum(dims.values()))


def reproduce_command(name: str, case: str, data_seed: int, path: str = "") -> str:
    where = f" --path {shlex.quote(path)}" if path else ""
    return f"handgrad check {shlex.quote(name)}{where} --dims {case} --data-seed {data_seed}"


# Which failure names a report's kind, first match wins, inside the most informative failing
# case: a broken float64 contract first (it explains what follows: a narrowed dtype, a written
# cache), then the first wrong gradient against float64 autograd in backward order, the
# forward, the numerical oracles, the descent step, the checks of a hand jvp and hvp (against
# the reference first), and only then the float32 pass.
KIND_ORDER = (("contract", "float64"), ("autograd", "float64"), ("forward", "float64"),
              ("fd", "float64"), ("complex-step", "float64"), ("taylor", "float64"),
              ("descent", "float64"), ("jvp", "float64"), ("hvp", "float64"),
              ("jvp-fd", "float64"), ("jvp-complex-step", "float64"), ("hvp-fd", "float64"),
              ("dot-product", "float64"), ("symmetry", "float64"), ("linearity", "float64"),
              ("taylor2", "float64"), ("contract", "float32"), ("autograd", "float32"),
              ("forward", "float32"), ("jvp", "float32"), ("hvp", "float32"))


@dataclass(repr=False)
class Report:
    """Every result for one derivation, plus the diagnosis of its failing cases."""

    derivation: str
    expect: str = "pass"
    erratum: str = ""
    doc: str = ""
    results: list[Result] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)
    expect_kind: str = ""

    def __repr__(self) -> str:
        return f"Report({self.derivation!r}, status={self.status!r}, kind={self.kind!r})"

    def _repr_html_(self) -> str | None:
        """The report in a notebook (Jupyter calls this): the verdict, the tensor x oracle
        table, the diagnosis with heatmaps of what is wrong, and the Taylor and
        finite-difference curves of its most telling case (re-run once, drawn inline). The view
        is :func:`handgrad.views.notebook.html`, set by ``import handgrad`` (this module imports no
        view); None (plain repr) without it."""
        return _HTML_VIEW(self) if _HTML_VIEW is not None else None

    @property
    def status(self) -> str:
        """"error", "fail", "vacuous" (nothing wrong seen, but some gradient was never
        exercised) or "pass"."""
        statuses = {r.status for r in self.results}
        return next((s for s in ("error", "fail", "vacuous") if s in statuses), "pass")

    @property
    def passed(self) -> bool:
        """True when the hand derivation agrees with every oracle on every case, and every
        gradient was exercised in some case."""
        return all(r.passed for r in self.results)

    @property
    def rejected(self) -> bool:
        """True when some oracle found the derivation wrong (vacuity is no rejection)."""
        return self.status in ("fail", "error")

    @property
    def as_expected(self) -> bool:
        """Right records pass; records transcribing a known error are rejected, with their
        expected kind when one is given."""
        if self.expect == "pass":
            return self.passed
        return self.rejected and (not self.expect_kind or self.kind == self.expect_kind)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.passed]

    @property
    def warnings(self) -> list[Result]:
        return [r for r in self.results if r.status == "warning"]

    def telling_case(self) -> tuple[str, int] | None:
        """(case, data seed) of the most informative case that fails."""
        failing = [r for r in self.results if r.status in ("fail", "error")]
        if not failing:
            return None
        best = max(failing, key=lambda r: informativeness(r.case))
        return best.case, best.data_seed

    @property
    def kind_result(self) -> Result | None:
        """The failure whose kind names the report (see KIND_ORDER)."""
        telling = self.telling_case()
        if telling is None:
            return next((r for r in self.results if r.status == "vacuous"), None)
        failing = [r for r in self.results if r.status in ("fail", "error")
                   and (r.case, r.data_seed) == telling]
        hit = next((r for check, dtype in KIND_ORDER for r in failing
                    if r.check == check and r.dtype == dtype), failing[0])
        # A gradient of the wrong shape in a case as telling as this one (as many dimensions
        # above 1) says more than its values here: a square case only hides a transpose.
        shaped = [r for r in self.results if r.kind == "wrong-shape" and r.status == "fail"
                  and (r.check, r.tensor, r.dtype) == (hit.check, hit.tensor, hit.dtype)
                  and informativeness(r.case)[0] >= informativeness(telling[0])[0]]
        return max(shaped, key=lambda r: informativeness(r.case)) if shaped else hit

    @property
    def kind(self) -> str:
        """The diagnosis of the report (see KIND_ORDER); "vacuous" when nothing failed but a
        gradient was never exercised; "" when it passed."""
        hit = self.kind_result
        return hit.kind if hit else ""

    def render(self, only_failures: bool = False) -> str:
        """The per-tensor table; with ``only_failures``, the failing rows of the most telling
        failing case (every dtype), and a count of the rest."""
        rows = self.results
        rest = 0
        if only_failures and self.failures:
            telling = self.telling_case()
            rows = [r for r in self.failures if (r.case, r.data_seed) == telling
                    or r.status == "vacuous"]
            rest = len(self.failures) - len(rows)
        elif only_failures:
            rows = []
        lines = [f"== {self.derivation}" + (f"  (transcribes: {self.erratum})" if self.erratum
                                              else "")]
        lines += render_table(rows)
        if rest:
            lines.append(f"  (+{rest} failing rows in other cases; check with --verbose)")
        lines += self.diagnoses
        verdict = {"pass": "PASS", "vacuous": "VACUOUS (not a pass)"}.get(self.status, "FAIL")
        if self.kind == "not-implemented":
            verdict = "NOT IMPLEMENTED YET (fill in the TODOs)"
        if self.expect == "reject":
            verdict = ("REJECTED as expected" if self.as_expected else
                       f"REJECTED, but diagnosed {self.kind!r} where {self.expect_kind!r} was "
                       "expected" if self.rejected else "MISSED: expected a rejection")
        lines.append(f"verdict: {verdict}")
        return "\n".join(lines)


# Report -> its record, while the report lives: not a field (a record holds functions, which
# neither JSON nor pickling between processes can carry).
_CHECKED: dict[int, object] = {}
_HTML_VIEW: Callable[[Report], str] | None = None


def remember_record(report: Report, record) -> None:
    _CHECKED[id(report)] = record
    weakref.finalize(report, _CHECKED.pop, id(report), None)


def checked_record(report: Report):
    """The record :func:`handgrad.check` was given for ``report``, while both live; else None."""
    return _CHECKED.get(id(report))


def set_html_view(view: Callable[[Report], str]) -> None:
    """The function that renders a report for Jupyter (``Report._repr_html_``)."""
    global _HTML_VIEW
    _HTML_VIEW = view


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2e}"


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
            str([int(i) for i in r.worst_index]) if r.worst_index else "-",
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
        if (r.message and not r.passed or r.status in ("unreliable", "skipped", "warning")) \
                and (r.tensor, evidence) not in seen:
            seen.add((r.tensor, evidence))
            out.append(f"  {r.check} {r.tensor}: {r.message}")
    return out
