"""Matplotlib figures for the lessons. Every function returns the Figure it drew on.

Pass ``ax=`` to draw into an existing axes (a live widget redraws in place);
leave it out for a new figure.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Iterable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis, XAxis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import (
    AutoLocator,
    FuncFormatter,
    Locator,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    ScalarFormatter,
)
from matplotlib.transforms import Bbox

from mlkit.train import History

# ---------------------------------------------------------------- readable axes (every dashboard's figure)


def plain_number(value: float, pos: int | None = None) -> str:
    """A tick label as a person writes it: 0.5, 1, 20, 1600, 20,000 (never 2×10¹); 1e-5 and 1e9 only far out."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(value) >= 1e9 or abs(value) < 1e-4:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.6g}"


def _label_size(axis: Axis) -> float:
    """The tick labels' font size in points."""
    ticks = axis.get_major_ticks(1)
    if ticks:
        return float(ticks[0].label1.get_fontsize())
    size = mpl.rcParams["xtick.labelsize"] if isinstance(axis, XAxis) else mpl.rcParams["ytick.labelsize"]
    return FontProperties(size=size).get_size_in_points()


def axes_points(ax: Axes) -> tuple[float, float]:
    """The width and height of ``ax`` in points, as the figure's layout last placed it."""
    scale = 72 / ax.figure.dpi
    return ax.bbox.width * scale, ax.bbox.height * scale


def _fit(axis: Axis, ticks: Sequence[float], labels: Sequence[str]) -> bool:
    """Whether these tick labels fit along ``axis`` without touching, judged from the axes' current size.

    A label is taken as 0.64 em per character wide (DejaVu Sans digits) and 1.2 em high, with a gap of
    0.8 em between two labels side by side (x axis) and 0.4 em one above the other (y axis).
    """
    vmin, vmax = sorted(axis.get_view_interval())
    transform = axis.get_transform()
    lo, hi = transform.transform([vmin, vmax])
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi == lo:
        return True
    size, horizontal = _label_size(axis), isinstance(axis, XAxis)
    length = axes_points(axis.axes)[0 if horizontal else 1]
    placed = [
        ((transform.transform([t])[0] - lo) / (hi - lo) * length, label)
        for t, label in zip(ticks, labels, strict=True)
        if vmin <= t <= vmax and label
    ]
    for (a, first), (b, second) in itertools.pairwise(placed):
        need = (len(first) + len(second)) / 2 * 0.64 * size + 0.8 * size if horizontal else 1.6 * size
        if abs(b - a) < need:
            return False
    return True


class ReadableLocator(Locator):
    """Ticks at round values, as many as fit without their labels touching (judged from the axes' size).

    Log axes (``log=True``) get 1, 10, 100 …, or 1, 2, 5, 10 …, or every whole value 1 … 9 per decade when a
    narrow range needs them, and plain ticks (0.70, 0.72 …) when even those give fewer than two.
    Linear axes get what :class:`~matplotlib.ticker.MaxNLocator` gives for the most bins that fit.
    """

    def __init__(self, log: bool = False, integer: bool = False):
        self.log = log
        self.integer = integer

    def __call__(self):
        if self.axis is None:
            return []
        vmin, vmax = self.axis.get_view_interval()
        return self.tick_values(vmin, vmax)

    def _labels(self, ticks: Sequence[float]) -> list[str]:
        if not isinstance(self.axis, Axis) or not len(ticks):
            return []
        return list(self.axis.get_major_formatter().format_ticks(list(ticks)))

    def _fits(self, ticks: Sequence[float]) -> bool:
        return not isinstance(self.axis, Axis) or _fit(self.axis, ticks, self._labels(ticks))

    def _linear(self, vmin: float, vmax: float, bins: Iterable[int]) -> list[float]:
        found: list[float] = []
        for n in bins:
            locator = MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10], integer=self.integer, min_n_ticks=1)
            ticks = [t for t in locator.tick_values(vmin, vmax) if not self.log or t > 0]
            inside = [t for t in ticks if vmin <= t <= vmax]
            if self._fits(inside):
                return ticks
            found = ticks
        return found[:1]

    def tick_values(self, vmin: float, vmax: float):
        vmin, vmax = sorted((vmin, vmax))
        if not self.log:
            return self._linear(vmin, vmax, (9, 7, 5, 4, 3, 2, 1))
        if vmax <= 0:
            return []
        vmin = vmin if vmin > 0 else vmax / 1000
        lo, hi = math.floor(math.log10(vmin)), math.ceil(math.log10(vmax))
        steps = ((1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 5), (1, 2, 5))  # within a decade, finest first
        candidates = [[s * 10.0**k for k in range(lo, hi + 1) for s in subs] for subs in steps]
        # then one tick a decade, and on a long axis every second, third … decade: 1, 100, 10⁴ …
        candidates += [[10.0**k for k in range(lo, hi + 1) if k % every == 0] for every in (1, 2, 3, 5, 10)]
        for ticks in candidates:
            inside = [t for t in ticks if vmin * (1 - 1e-9) <= t <= vmax * (1 + 1e-9)]
            if len(inside) < 2:
                if ticks is candidates[0]:  # narrower than two whole values: plain ticks, as on a linear axis
                    return self._linear(vmin, vmax, (5, 4, 3, 2, 1))
                continue
            if self._fits(inside):
                return ticks
        return candidates[-1]


def readable(ax: Axes) -> Axes:
    """Make ``ax``'s tick labels readable: plain numbers on log axes, no more ticks than their labels have room for.

    Axes whose ticks were set by hand (fixed ticks, or none) are left as they are. Returns ``ax``.
    Every dashboard applies this to each of its panels after drawing it.
    """
    for axis in (ax.xaxis, ax.yaxis):
        locator = axis.get_major_locator()
        if axis.get_scale() == "log" and type(locator) is LogLocator:
            axis.set_major_locator(ReadableLocator(log=True))
            axis.set_major_formatter(FuncFormatter(plain_number))
            axis.set_minor_formatter(NullFormatter())
        elif axis.get_scale() == "linear" and type(locator) in (AutoLocator, MaxNLocator):
            integer = isinstance(locator, MaxNLocator) and bool(getattr(locator, "_integer", False))
            axis.set_major_locator(ReadableLocator(integer=integer))
            if isinstance(formatter := axis.get_major_formatter(), ScalarFormatter):
                formatter.set_useOffset(False)  # ticks read 0.945, not 1e-3 + 0.945
    return ax


def tidy(figure: Figure) -> Figure:
    """:func:`readable` for every axes of ``figure`` (a notebook's own figure); returns it."""
    for ax in figure.axes:
        readable(ax)
    return figure


def headroom(ax: Axes, share: float) -> None:
    """Raise the top of ``ax``'s y axis so that the data fill the bottom ``1 - share`` of its height
    (linear or log): a band at the top where a legend or a note covers nothing."""
    bottom, top = ax.get_ylim()  # after autoscaling to what is drawn
    share = min(max(share, 0.0), 0.6)
    if ax.get_yscale() == "log" and bottom > 0 and top > 0:
        lo, hi = math.log10(bottom), math.log10(top)
        ax.set_ylim(bottom, 10 ** (hi + (hi - lo) * share / (1 - share)))
    elif ax.get_yscale() == "linear":
        ax.set_ylim(bottom, top + (top - bottom) * share / (1 - share))


def legend_on_top(ax: Axes, **kwargs):
    """A legend in a band made for it above the data (see :func:`headroom`): it never covers a point.

    ``kwargs`` go to ``ax.legend`` (default: no frame, 7 pt, two columns, upper centre). Call it last, after
    the data are drawn and the y limits set.
    """
    kwargs = {"frameon": False, "fontsize": 7, "loc": "upper center", "ncol": 2, "borderaxespad": 0.3, **kwargs}
    legend = ax.legend(**kwargs)
    rows = -(-len(legend.get_texts()) // kwargs["ncol"])
    size = FontProperties(size=kwargs["fontsize"]).get_size_in_points()
    need = rows * size * 1.5 + 0.8 * size  # points: rows, their spacing, the padding above
    height = axes_points(ax)[1]
    headroom(ax, 1.15 * need / height if height > 0 else 0.3)
    return legend


WARNING_COLOUR = "#9a3412"  # the dashboards' warning box text colour


def message(ax: Axes, text: str, *, empty: bool = True, colour: str = WARNING_COLOUR) -> None:
    """Write ``text`` inside ``ax``, wrapped to its width: what a run with nothing (or nothing sound) to draw
    says, instead of bare axes. ``empty``: there is no data, so the ticks go too (no 0-1 scale of nothing)."""
    if empty:
        ax.set_xticks([])
        ax.set_yticks([])
    size = 8
    width_pt = axes_points(ax)[0]
    lines = textwrap.fill(text, max(20, int(width_pt * 0.9 / (0.55 * size))))
    ax.text(
        0.5,
        0.5,
        lines,
        ha="center",
        va="center",
        fontsize=size,
        color=colour,
        transform=ax.transAxes,
        bbox={"boxstyle": "round", "facecolor": "#fff7ed", "edgecolor": "#ea580c", "alpha": 0.95},
        zorder=5,
    )


# ---------------------------------------------------------------- checking a figure (tests)


def _renderer(figure: Figure):
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _texts(ax: Axes) -> list[tuple[str, Text]]:
    found: list[tuple[str, Text]] = []
    for name, axis in (("x tick", ax.xaxis), ("y tick", ax.yaxis)):
        drawn = getattr(axis, "_update_ticks")()  # noqa: B009 (private): the ticks inside the view, as drawn
        found += [
            (f"{name} {label.get_text()!r}", label)
            for tick in drawn
            for label in (tick.label1, tick.label2)
            if tick.get_visible() and label.get_visible() and label.get_text()
        ]
        found.append((f"{name[0]} label", axis.label))
    found += [
        ("title", t) for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)) if t
    ]
    found += [(f"text {t.get_text()!r}", t) for t in ax.texts]
    return [(name, t) for name, t in found if t.get_visible() and t.get_text()]


def _points(ax: Axes) -> list[tuple[float, float, float]]:
    """Every data point drawn in ``ax`` as (x, y, radius) in display pixels: line vertices and scatter points."""
    points: list[tuple[float, float, float]] = []
    scale = ax.figure.dpi / 72
    for line in ax.get_lines():
        if not isinstance(line, Line2D) or not line.get_visible() or line.get_transform() != ax.transData:
            continue
        marker = line.get_marker()
        radius = line.get_markersize() / 2 * scale if marker not in (None, "None", "", " ") else 1.0
        xy = np.column_stack([line.get_xdata(orig=False), line.get_ydata(orig=False)]).astype(float)
        for x, y in ax.transData.transform(xy[np.isfinite(xy).all(1)]):
            points.append((x, y, radius))
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and collection.get_visible():
            sizes = collection.get_sizes()
            for i, (x, y) in enumerate(collection.get_offset_transform().transform(collection.get_offsets())):
                radius = math.sqrt(sizes[i % len(sizes)]) / 2 * scale if len(sizes) else 1.0
                points.append((x, y, radius))
    return points


def _overlap(a: Bbox, b: Bbox, tolerance: float = 1.0) -> bool:
    """Whether two boxes share more than ``tolerance`` pixels each way (touching is not overlapping)."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance


def collisions(figure: Figure, data: bool = True) -> list[str]:
    """What would make ``figure`` hard to read: pairs of texts (tick labels, axis labels, titles, annotations,
    legends) whose boxes intersect, and (``data``) legends or annotations drawn over a data point.

    Drawn with matplotlib's own renderer, so the boxes are the real ones. An empty list: readable.
    """
    renderer = _renderer(figure)
    boxes: list[tuple[str, Bbox, object]] = []
    found: list[str] = []
    for i, ax in enumerate(figure.axes):
        if not ax.get_visible():
            continue
        for name, text in _texts(ax):
            boxes.append((f"panel {i} {name}", text.get_window_extent(renderer), ax))
        covering = [(f"panel {i} text {t.get_text()!r}", t.get_window_extent(renderer)) for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            box = legend.get_window_extent(renderer)
            boxes.append((f"panel {i} legend", box, ax))
            covering.append((f"panel {i} legend", box))
            bars = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, Rectangle) and p.get_visible()]
            if data and (hit := sum(_overlap(box, bar) for bar in bars if bar.height > 1)):
                found.append(f"panel {i} legend covers {hit} bar(s)")
        if data:
            points = _points(ax)
            for name, box in covering:
                under = [(x, y) for x, y, r in points if box.expanded(1, 1).padded(r - 1).contains(x, y)]
                if under:
                    found.append(f"{name} covers {len(under)} data point(s)")
    boxes += [
        (f"figure text {t.get_text()!r}", t.get_window_extent(renderer), None)
        for t in {*figure.texts, *filter(None, [getattr(figure, "_suptitle", None)])}
        if t.get_visible() and t.get_text()
    ]
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            (name_a, box_a, _), (name_b, box_b, _) = boxes[a], boxes[b]
            if _overlap(box_a, box_b):
                found.append(f"{name_a} overlaps {name_b}")
    return found


def _axes(ax=None, figsize=(5, 3.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def curves(history: History, metric: str = "loss", ax=None, title: str | None = None, log: bool = True) -> Figure:
    """Training and validation ``metric`` ("loss" or "acc") per epoch; losses on a log axis unless ``log=False``."""
    fig, ax = _axes(ax)
    ax.clear()
    name = {"loss": "loss", "acc": "accuracy"}[metric]
    ax.set_title(title or f"{name} per epoch")
    values = np.asarray(getattr(history, f"train_{metric}") + getattr(history, f"val_{metric}"), float)
    if not np.isfinite(values).any():  # nothing kept (a run that diverged in its first epochs): say why
        message(ax, history.message if history.message and not history.epochs else f"no {name} to draw")
        return fig
    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, getattr(history, f"train_{metric}"), "o-", ms=3, label="training")
    ax.plot(epochs, getattr(history, f"val_{metric}"), "s-", ms=3, label="validation")
    if history.best_epoch and metric == "loss":
        ax.axvline(
            history.best_epoch,
            color="grey",
            lw=0.8,
            ls=":",
            label=f"best validation (epoch {history.best_epoch})",
        )
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 2.5
    ax.set_ylabel(name)
    if log and metric == "loss" and history.epochs and min(history.train_loss + history.val_loss) > 0:
        ax.set_yscale("log")
    legend_on_top(ax)
    readable(ax)
    return fig


def sample_grid(
    images: np.ndarray,
    labels: Sequence,
    image_shape: tuple[int, int],
    *,
    predicted: Sequence | None = None,
    columns: int = 10,
    ax=None,
) -> Figure:
    """A grid of small grey images titled with their labels (red where a prediction is wrong)."""
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.95), layout="constrained", squeeze=False)
    for i, cell in enumerate(axes.flat):
        cell.axis("off")
        if i >= n:
            continue
        cell.imshow(np.asarray(images[i]).reshape(image_shape), cmap="gray_r")
        title = f"{labels[i]}" if predicted is None else f"{predicted[i]} ({labels[i]})"
        wrong = predicted is not None and predicted[i] != labels[i]
        cell.set_title(title, fontsize=9, color="crimson" if wrong else "black")
    return fig


def probabilities(probs: np.ndarray, labels: Sequence, ax=None) -> Figure:
    """One example's class probabilities as a bar chart."""
    fig, ax = _axes(ax, figsize=(4, 2.4))
    ax.clear()
    ax.bar([str(label) for label in labels], probs, color="steelblue")
    ax.set_ylim(0, 1)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    return fig


def decision_boundary(model, data, ax=None, resolution: int = 120) -> Figure:
    """The model's predicted class over the plane, with the training points on top (2-D data only)."""
    from mlkit.train import apply

    fig, ax = _axes(ax, figsize=(4, 4))
    ax.clear()
    raw = data.train.raw_x
    lo, hi = raw.min(0) - 0.3, raw.max(0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    outputs = apply(model, data.preprocessor(grid))
    classes = outputs.argmax(1).reshape(gx.shape)
    cmap = plt.get_cmap("coolwarm" if data.num_classes == 2 else "tab10")
    ax.contourf(gx, gy, classes, levels=np.arange(data.num_classes + 1) - 0.5, cmap=cmap, alpha=0.3)
    ax.scatter(
        raw[:, 0],
        raw[:, 1],
        c=data.train.y,
        cmap=cmap,
        s=9,
        edgecolors="k",
        linewidths=0.3,
        vmin=0,
        vmax=max(data.num_classes - 1, 1),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("decision boundary")
    return fig


def regression_fit(model, data, ax=None, truth=None) -> Figure:
    """A 1-D regression model's curve over its training and validation points."""
    from mlkit.train import apply

    fig, ax = _axes(ax)
    ax.clear()
    lo, hi = data.train.raw_x.min(), data.train.raw_x.max()
    grid = np.linspace(lo, hi, 300, dtype=np.float32)[:, None]
    ax.scatter(data.train.raw_x[:, 0], data.train.y, s=14, label="training points")
    ax.scatter(
        data.val.raw_x[:, 0],
        data.val.y,
        s=14,
        marker="s",
        facecolors="none",
        edgecolors="C1",
        label="validation points",
    )
    if truth is not None:
        ax.plot(grid[:, 0], truth(grid[:, 0]), color="grey", ls="--", lw=1, label="true curve")
    ax.plot(grid[:, 0], apply(model, data.preprocessor(grid))[:, 0], color="C2", lw=2, label="model")
    ax.set_ylim(-2, 2)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("the fitted curve")
    return fig


def heatmap(
    values: np.ndarray,
    rows: Sequence,
    columns: Sequence,
    *,
    row_name: str = "",
    column_name: str = "",
    title: str = "",
    fmt: str = "{:.3f}",
    ax=None,
) -> Figure:
    """A grid of numbers coloured by value (e.g. validation accuracy over two hyperparameters)."""
    fig, ax = _axes(ax, figsize=(1.0 + 0.9 * len(columns), 0.8 + 0.5 * len(rows)))
    ax.clear()
    ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), [str(c) for c in columns])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(column_name)
    ax.set_ylabel(row_name)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            fmt.format(v),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if np.isfinite(v) and v < middle else "black",
        )
    ax.set_title(title)
    return fig
