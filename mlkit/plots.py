"""Matplotlib figures for the lessons. Every function returns the Figure it drew on.

Pass ``ax=`` to draw into an existing axes (a live widget redraws in place);
leave it out for a new figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mlkit.train import History


def _axes(ax=None, figsize=(5, 3.2)):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def curves(history: History, metric: str = "loss", ax=None, title: str | None = None) -> Figure:
    """Training and validation ``metric`` ("loss" or "acc") per epoch."""
    fig, ax = _axes(ax)
    ax.clear()
    epochs = np.arange(1, history.epochs + 1)
    ax.plot(epochs, getattr(history, f"train_{metric}"), "o-", ms=3, label="training")
    ax.plot(epochs, getattr(history, f"val_{metric}"), "s-", ms=3, label="validation")
    if history.best_epoch and metric == "loss":
        ax.axvline(history.best_epoch, color="grey", lw=0.8, ls=":", label=f"best epoch ({history.best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel({"loss": "loss", "acc": "accuracy"}[metric])
    if metric == "loss" and history.epochs and min(history.train_loss + history.val_loss) > 0:
        ax.set_yscale("log")
    ax.set_title(title or f"{metric} per epoch")
    ax.legend(frameon=False)
    return fig


def sample_grid(images: np.ndarray, labels: Sequence, image_shape: tuple[int, int], *,
                predicted: Sequence | None = None, columns: int = 10, ax=None) -> Figure:
    """A grid of small grey images titled with their labels (red where a prediction is wrong)."""
    n = len(images)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.95), layout="constrained",
                             squeeze=False)
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
    ax.set_ylabel("probability")
    return fig
