"""The report's pictures, drawn with matplotlib on bare ``Figure`` objects (no pyplot, no
interactive backend: headless anywhere, and a notebook's own backend is left alone). Each
function returns an ``<img>`` tag whose source is the SVG itself, so a page needs no other file.

Log-log plots are drawn as log10 of the values on linear axes, with decade tick labels: the
picture is the same, and matplotlib's log axes cost five times as much to draw (93 pages).
"""

from __future__ import annotations

import base64
import html
import io
import math

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from handgrad.oracles.numerics.taylor import TaylorResult
from handgrad.views.evidence import FigurePair, Sweep, TensorDiff

STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9.5, "legend.fontsize": 8,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
# A heatmap is at most this many rows tall on the page; taller tensors are drawn squeezed.
MAX_ROWS = 60


def image(fig: Figure, alt: str) -> str:
    """The figure as an inline SVG ``<img>``."""
    buf = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg")
    data = base64.b64encode(buf.getvalue().encode()).decode()
    return (f'<img class="plot" alt="{html.escape(alt)}" '
            f'src="data:image/svg+xml;base64,{data}">')


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _decades(ax, axis: str) -> None:
    """Decade labels on an axis that holds log10 values."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True, nbins=7))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"1e{int(round(v))}"))


def _log(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)


def taylor(t: TaylorResult) -> str:
    """The remainder r(h) against h, log-log: the fitted points, slope-1 and slope-2 guides
    (slope-2 and slope-3 for the second-order test) through the first fitted point, the
    round-off floor, and the steps whose stencil has a kink."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.4, 3.6)
        ax = fig.add_subplot()
        logh, logr, logf = _log(t.steps), _log(t.remainders), _log(t.floors)
        kinks = np.array(t.kinks, dtype=bool)
        smooth = ~kinks
        ax.plot(logh, logf, "--", color="0.5", label="round-off floor")
        ax.plot(logh[smooth], logr[smooth], "o", ms=3.5, color=COLOURS[0], label="r(h)")
        if kinks.any():
            ax.plot(logh[kinks], logr[kinks], "x", ms=5, color="0.35",
                    label="stencil not smooth: a kink or strong curvature (not fitted)")
        fit = list(t.fit)
        if fit:
            ax.plot(logh[fit], logr[fit], "o", ms=6, mfc="none", mec="k", label="fitted")
            x0, y0 = logh[fit[0]], logr[fit[0]]
            span = np.array([np.nanmin(logh), np.nanmax(logh)])
            for slope, style in ((t.order, ":"), (t.order + 1, "-.")):
                ax.plot(span, y0 + slope * (span - x0), style, color=COLOURS[slope],
                        lw=1, label=f"slope {slope}")
        finite = logr[np.isfinite(logr)]
        if finite.size:
            ax.set_ylim(min(np.nanmin(logf), finite.min()) - 1, max(finite.max(), 0) + 1)
        _decades(ax, "x")
        _decades(ax, "y")
        ax.set_xlabel("step h")
        second = t.order == 2
        ax.set_ylabel("|S(p+hv) - S(p) - h<g,v>" + (" - h²/2<v,Hv>|" if second else "|"))
        slope = "" if math.isnan(t.slope) else f": slope {t.slope:.2f}"
        what = "Second-order Taylor remainder" if second else "Taylor remainder"
        ax.set_title(f"{what}{slope} ({t.status})")
        ax.legend(loc="lower right")
    return image(fig, f"{what} against h, {t.status}")


def identity(title: str, xlabel: str, ylabel: str, x: np.ndarray, y: np.ndarray,
             magnitude: np.ndarray, rtol: float) -> str:
    """Two sides of an identity between hand linearisations (the dot-product test, the symmetry
    of H v), one point per probe pair, against the diagonal they must lie on; the title gives
    the worst discrepancy relative to the magnitude of the terms, against the tolerance."""
    x, y = np.ravel(x), np.ravel(y)
    rel = np.abs(x - y) / np.maximum(np.ravel(magnitude), 1e-300)
    with matplotlib.rc_context(STYLE):
        fig = _figure(4.2, 3.6)
        ax = fig.add_subplot()
        span = max(float(np.abs(np.concatenate([x, y])).max(initial=0.0)), 1e-300) * 1.1
        ax.plot([-span, span], [-span, span], "-", color="0.6", lw=1, label="equal")
        bad = rel > rtol
        ax.plot(x[~bad], y[~bad], "o", ms=5, color=COLOURS[0], label="pair within tolerance")
        if bad.any():
            ax.plot(x[bad], y[bad], "x", ms=7, color="crimson", label="pair off the diagonal")
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: worst {rel.max(initial=0.0):.1e} (tolerance {rtol:.0e})")
        ax.legend(loc="upper left", fontsize=7)
    return image(fig, f"{title}: {'fails' if bad.any() else 'holds'}")


def fd_sweep(sweeps: list[Sweep]) -> str:
    """Central-difference error against the step for a few entries (the V of truncation and
    round-off), the engine's step marked with its Richardson estimate, and the hand value's
    error as a dashed line in the same colour."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.4, 3.6)
        ax = fig.add_subplot()
        positive = [e for s in sweeps for e in (*s.errors, s.hand_error, s.richardson_error)
                    if e > 0]
        bottom = math.log10(min(positive)) - 1 if positive else -17.0
        for s, colour in zip(sweeps, COLOURS):
            label = f"{s.tensor}[{','.join(map(str, s.index))}]" + (" (on a kink)"
                                                                     if s.on_kink else "")
            logh = _log(s.steps)
            loge = np.nan_to_num(_log(s.errors), nan=bottom)
            ax.plot(logh, loge, "o-", ms=3, lw=1, color=colour, label=label)
            ax.axvline(math.log10(s.chosen), color=colour, lw=0.8, ls=":")
            ax.plot([math.log10(s.chosen)], [np.nan_to_num(_log([s.richardson_error]),
                                                           nan=bottom)[0]],
                    "*", ms=10, color=colour, mec="k", mew=0.5)
            ax.axhline(np.nan_to_num(_log([s.hand_error]), nan=bottom)[0], color=colour,
                       lw=1, ls="--")
        ax.plot([], [], "*", color="0.4", mec="k", mew=0.5, label="engine's step (Richardson)")
        ax.plot([], [], "--", color="0.4", label="|hand - truth|")
        _decades(ax, "x")
        _decades(ax, "y")
        ax.set_xlabel("step h")
        ax.set_ylabel(f"|central difference - {sweeps[0].truth_from}|")
        ax.set_title("Finite-difference error against the step")
        ax.legend(loc="upper center", fontsize=7)
    return image(fig, "finite-difference error against the step h")


def _span(values: np.ndarray) -> float:
    """The largest finite magnitude (1 when there is none): a colour scale's half-width. NaN and
    inf entries (a ``non-finite`` gradient) are drawn as blanks."""
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def as_matrix(a: np.ndarray) -> np.ndarray:
    """A tensor as rows x columns: the last axis across, every other axis stacked down."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return a.reshape(1, 1)
    return a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)


def _axis_labels(ax, axes: tuple[str, ...], ndim: int) -> None:
    if len(axes) == ndim and ndim:
        ax.set_xlabel(axes[-1])
        ax.set_ylabel(" x ".join(axes[:-1]) if ndim > 1 else "")


def _block_lines(ax, shape: tuple[int, ...], axes: tuple[str, ...]) -> None:
    """Integer ticks; for a tensor of 3 or more axes, lines between the blocks of the first
    axis, each block labelled by its index there."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(shape) >= 3 and shape[0] > 1:
        per = int(np.prod(shape[1:-1]))
        for i in range(1, shape[0]):
            ax.axhline(i * per - 0.5, color="k", lw=0.6)
        first = axes[0] if len(axes) == len(shape) else "axis 0"
        every = max(1, shape[0] // 12)
        blocks = range(0, shape[0], every)
        ax.set_yticks([i * per + (per - 1) / 2 for i in blocks],
                      [f"{first}={i}" for i in blocks])


def diff(d: TensorDiff) -> str:
    """hand - reference (diverging, centred at zero) next to the reference, for one tensor."""
    label = f"{d.tensor}" + (f" ({d.tag})" if d.tag else "")
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.2, 3.0)
        left, right = fig.subplots(1, 2)
        if d.hand.shape != d.ref.shape:
            panels = ((left, d.hand, f"hand {d.hand.shape}"), (right, d.ref,
                                                               f"reference {d.ref.shape}"))
            for ax, values, title in panels:
                im = ax.imshow(as_matrix(values), aspect="auto", interpolation="nearest",
                               cmap="viridis")
                fig.colorbar(im, ax=ax, shrink=0.85)
                ax.set_title(f"{label}: {title}")
                ax.grid(False)
            return image(fig, f"{label}: hand and reference of different shapes")
        delta = as_matrix(d.hand - d.ref)
        span = _span(delta)
        im = left.imshow(delta, aspect="auto", interpolation="nearest",
                         cmap=colormaps["RdBu_r"].with_extremes(bad="black"),
                         norm=TwoSlopeNorm(0.0, -span, span))
        fig.colorbar(im, ax=left, shrink=0.85)
        left.set_title(f"{label}: hand - reference" + (f" [{d.kind}]" if d.kind else "")
                       + ("\n(black: NaN or inf)" if not np.isfinite(delta).all() else ""))
        ref = as_matrix(d.ref)
        scale = _span(ref)
        im = right.imshow(ref, aspect="auto", interpolation="nearest", cmap="RdBu_r",
                          norm=TwoSlopeNorm(0.0, -scale, scale))
        fig.colorbar(im, ax=right, shrink=0.85)
        right.set_title(f"{label}: reference ({d.check})")
        for ax in (left, right):
            ax.grid(False)
            _axis_labels(ax, d.axes, d.hand.ndim)
            _block_lines(ax, d.hand.shape, d.axes)
    return image(fig, f"{label}: hand minus reference")


def pair(p: FigurePair) -> str:
    """A record's figure: hand and reference side by side on one colour scale. Non-negative
    values (magnitudes) get a sequential scale, logarithmic when they span more than two
    decades, with exact zeros left blank; signed values a diverging one centred at zero."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.2, 3.3)
        axes = fig.subplots(1, 2)
        both = np.concatenate([p.hand.ravel(), p.ref.ravel()])
        positive = both[both > 0]
        magnitudes = bool(both.size) and bool((both >= 0).all()) and bool(positive.size)
        if magnitudes:
            low, high = float(positive.min()), float(positive.max())
            norm = LogNorm(low, high) if high > 100 * low else Normalize(0.0, high)
            cmap = "viridis"
        else:
            span = _span(both)
            norm, cmap = TwoSlopeNorm(0.0, -span, span), "RdBu_r"
        for ax, values, who in ((axes[0], p.hand, "hand"), (axes[1], p.ref, "reference")):
            shown = np.ma.masked_equal(as_matrix(values), 0.0) if magnitudes \
                else as_matrix(values)
            im = ax.imshow(shown, interpolation="nearest", cmap=cmap, norm=norm)
            ax.set_title(who)
            ax.grid(False)
            _block_lines(ax, np.shape(values), ())
        fig.colorbar(im, ax=axes, shrink=0.85)
        fig.suptitle(p.title, fontsize=9.5)
    return image(fig, f"{p.title}: hand and reference")


def bench(groups: list[tuple[str, float, float]]) -> str:
    """Median times of hand and autograd per benchmark group (seconds), with their ratio."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.6, 1.2 + 0.42 * len(groups))
        ax = fig.add_subplot()
        y = np.arange(len(groups))
        hand = np.array([g[1] for g in groups]) * 1e3
        auto = np.array([g[2] for g in groups]) * 1e3
        ax.barh(y - 0.2, hand, 0.4, color=COLOURS[0], label="hand (NumPy)")
        ax.barh(y + 0.2, auto, 0.4, color=COLOURS[1], label="autograd (torch)")
        for i, (h, a) in enumerate(zip(hand, auto)):
            ax.text(max(h, a) * 1.05, i, f"x{h / a:.2f}", va="center", fontsize=8)
        ax.set_yticks(y, [g[0] for g in groups], fontsize=7.5)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("median time (ms), log scale; hand/autograd ratio at the right")
        ax.set_xlim(right=float(max(hand.max(), auto.max())) * 3)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return image(fig, "benchmark medians, hand against autograd")


def scaling(series: dict[str, list[tuple[float, float]]], exponents: dict[str, float],
            dim: str) -> str:
    """Median seconds against size on log-log axes, one line per series, each labelled with
    its fitted cost exponent (the slope of the line)."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.4, 3.6)
        ax = fig.add_subplot()
        for i, (name, points) in enumerate(sorted(series.items())):
            sizes, seconds = zip(*sorted(points))
            ax.plot(sizes, np.array(seconds) * 1e3, "o-", color=COLOURS[i % len(COLOURS)],
                    label=f"{name}: exponent {exponents[name]:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{dim} (log scale)")
        ax.set_ylabel("median time (ms, log scale)")
        ax.legend(frameon=False)
    return image(fig, f"median time against {dim}, log-log, with fitted exponents")
