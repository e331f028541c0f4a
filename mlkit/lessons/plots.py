"""Matplotlib figures for the lessons. Every function returns the Figure it drew on.

Pass ``ax=`` to draw into an existing axes (a live widget redraws in place);
leave it out for a new figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mlkit.train import History


def _axes(ax=None, figsize=(5, 3.2)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def curves(history: History, metric: str = "loss", ax=None, title: str | None = None, log: bool = True) -> Figure:
    """Training and validation ``metric`` ("loss" or "acc") per epoch; losses on a log axis unless ``log=False``."""
    fig, ax = _axes(ax)
    ax.clear()
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
    ax.set_ylabel({"loss": "loss", "acc": "accuracy"}[metric])
    if log and metric == "loss" and history.epochs and min(history.train_loss + history.val_loss) > 0:
        ax.set_yscale("log")
    ax.set_title(title or f"{ax.get_ylabel()} per epoch")
    ax.legend(frameon=False, fontsize=8)
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
