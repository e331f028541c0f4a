"""Explorers for lessons 02-04: the forward pass, the loss, gradient descent.

Each builder returns a ``LessonExplorer``: controls from :mod:`mlkit.lessons.widgets`
drive one small pure computation, ``compute(values)``, whose result the panels
and the status line read as ``explorer.result``. The computations are the NumPy
maths of :mod:`mlkit.lessons.byhand`, so a slider move costs milliseconds and
compiles nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
from matplotlib.axes import Axes

from mlkit.data import Dataset, load_dataset
from mlkit.lessons import plots
from mlkit.lessons.byhand import (
    ACTIVATIONS,
    Valley,
    behaviour,
    cross_entropy,
    cross_entropy_grad,
    forward,
    gradient_descent,
    init_params,
    layer_sizes,
    log_softmax,
    mlp_flops,
    mlp_params,
    softmax,
)
from mlkit.lessons.widgets import Explorer, Panel, dropdown, float_slider, int_slider, log_slider

if TYPE_CHECKING:
    from typing_extensions import Self

R = TypeVar("R")


class LessonExplorer(Explorer, Generic[R]):
    """An Explorer that computes ``result = compute(values)`` once per change, before panels and status read it."""

    result: R  # set by every refresh, so panels and describe read the current one

    def __init__(self, compute: Callable[[dict], R], controls: dict, panels: Sequence[Panel[Self]], **kwargs):
        self.compute = compute
        super().__init__(controls, panels, **kwargs)

    def refresh(self) -> None:
        with self._drawing:  # the result, the panels and the status of one change, never mixed with another's
            self.result = self.compute(self.values)
            super().refresh()


# ---------------------------------------------------------------- 02 forward pass and architecture


@dataclass(frozen=True)
class ForwardPass:
    sizes: list[int]
    params: int
    flops: int  # per example
    probs: np.ndarray  # (classes,)


def architecture_explorer(
    data: Dataset | None = None, index: int = 0, *, max_width: int = 256, **kwargs
) -> LessonExplorer[ForwardPass]:
    """Lesson 02: width, depth and activation of an untrained MLP; its output for one digit and its cost."""
    if data is None:
        data = load_dataset("digits", seed=0)
    x, true = data.test.x[index : index + 1], data.labels[data.test.y[index]]

    def compute(v: dict) -> ForwardPass:
        sizes = layer_sizes(data.num_features, v["width"], v["depth"], data.num_classes)
        logits = forward(init_params(sizes, v["seed"]), x, v["activation"])
        return ForwardPass(sizes, mlp_params(sizes), mlp_flops(sizes), softmax(logits)[0])

    def output_panel(ex: LessonExplorer[ForwardPass], ax: Axes) -> None:
        plots.probabilities(ex.result.probs, data.labels, ax=ax)
        ax.axhline(1 / data.num_classes, color="grey", ls=":", lw=1)
        ax.set_xlabel("class")
        ax.set_title(f"untrained MLP's answer for a {true}")

    def cost_panel(ex: LessonExplorer[ForwardPass], ax: Axes) -> None:
        widths = np.arange(4, max_width + 1, 4)
        sizes = [layer_sizes(data.num_features, int(w), ex.values["depth"], data.num_classes) for w in widths]
        ax.loglog(widths, [mlp_params(s) for s in sizes], label="parameters")
        ax.loglog(widths, [mlp_flops(s) for s in sizes], label="FLOPs per digit")
        ax.plot([ex.values["width"]] * 2, [ex.result.params, ex.result.flops], "ko", ms=5, label="this network")
        ax.set_xlabel("width (units per hidden layer)")
        ax.set_title(f"cost of {ex.values['depth']} hidden layer(s)")
        ax.legend(frameon=False, fontsize=8)

    def describe(ex: LessonExplorer[ForwardPass]) -> str:
        r = ex.result
        guess = int(r.probs.argmax())
        return (
            f"{r.params:,} parameters · {r.flops:,} FLOPs per digit · "
            f"guesses {data.labels[guess]} (p = {r.probs[guess]:.2f}) for a {true}"
        )

    controls = {
        "width": int_slider("width", 64, 4, max_width, 4),
        "depth": int_slider("hidden layers", 2, 1, 6),
        "activation": dropdown("activation", list(ACTIVATIONS)),
        "seed": int_slider("init seed", 0, 0, 9),
    }
    kwargs.setdefault("title", "Architecture: size, cost and an untrained guess")
    return LessonExplorer(compute, controls, (output_panel, cost_panel), describe=describe, **kwargs)


# ---------------------------------------------------------------- 03 loss


@dataclass(frozen=True)
class LossPoint:
    logits: np.ndarray
    label: int
    probs: np.ndarray
    loss: float
    grad: np.ndarray


def loss_explorer(
    classes: Sequence[str] = ("cat", "dog", "bird"), logits: Sequence[float] = (2.0, 1.0, -1.0), **kwargs
) -> LessonExplorer[LossPoint]:
    """Lesson 03: move the logits and the true class; see probabilities, loss and its gradient."""
    n = len(classes)

    def compute(v: dict) -> LossPoint:
        z = np.array([v[f"z{i}"] for i in range(n)], np.float64)
        label = v["label"]
        return LossPoint(z, label, softmax(z), cross_entropy(z, label), cross_entropy_grad(z, label))

    def probs_panel(ex: LessonExplorer[LossPoint], ax: Axes) -> None:
        r = ex.result
        ax.bar(classes, r.probs, color="steelblue", label="softmax(z)")
        ax.bar(classes, np.eye(n)[r.label], fill=False, edgecolor="k", lw=1.5, label="target (one-hot)")
        ax.set_ylim(0, 1.3)  # headroom: the legend sits above the tallest bar, never on the target's outline
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_title("probabilities vs target")
        ax.legend(frameon=False, fontsize=8, loc="upper center", ncol=2)

    def grad_panel(ex: LessonExplorer[LossPoint], ax: Axes) -> None:
        g = ex.result.grad
        ax.bar(classes, g, color=["crimson" if value > 0 else "seagreen" for value in g])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title("gradient: softmax(z) − one-hot")

    def curve_panel(ex: LessonExplorer[LossPoint], ax: Axes) -> None:
        r = ex.result
        grid = np.linspace(-8, 8, 161)
        sweep = np.repeat(r.logits[None, :], len(grid), 0)
        sweep[:, r.label] = grid
        ax.plot(grid, -log_softmax(sweep)[:, r.label], label="loss")
        z = r.logits[r.label]
        ax.plot(z, r.loss, "ko", ms=5)
        step = np.linspace(-2, 2, 21)
        ax.plot(z + step, r.loss + r.grad[r.label] * step, "r--", lw=1, label=f"slope {r.grad[r.label]:+.2f}")
        ax.set_xlabel(f"logit of the true class ({classes[r.label]})")
        ax.set_ylim(0, max(8.0, r.loss + 1))
        ax.set_title("loss as the true logit moves")
        ax.legend(frameon=False, fontsize=8)

    def describe(ex: LessonExplorer[LossPoint]) -> str:
        r = ex.result
        grad = ", ".join(f"{g:+.2f}" for g in r.grad)
        return f"loss {r.loss:.3f} · p({classes[r.label]}) = {r.probs[r.label]:.2f} · gradient [{grad}]"

    controls = {
        f"z{i}": float_slider(f"logit {name}", float(value), -8.0, 8.0, 0.1)
        for i, (name, value) in enumerate(zip(classes, logits, strict=True))
    }
    controls["label"] = dropdown("true class", [(name, i) for i, name in enumerate(classes)], 0)
    kwargs.setdefault("title", "Cross-entropy: push the right logit up")
    return LessonExplorer(compute, controls, (probs_panel, grad_panel, curve_panel), describe=describe, **kwargs)


# ---------------------------------------------------------------- 04 gradient descent


@dataclass(frozen=True)
class Descent:
    valley: Valley
    path: np.ndarray  # (steps + 1, 2), shorter when it left the map
    losses: np.ndarray
    behaviour: str


def descent_explorer(start: Sequence[float] = (-4.5, 1.5), **kwargs) -> LessonExplorer[Descent]:
    """Lesson 04: gradient descent on a long narrow valley; learning rate, steps and steepness on sliders."""
    lim = np.array([5.0, 3.0])

    def compute(v: dict) -> Descent:
        valley = Valley(v["curvature"])
        path = gradient_descent(valley.grad, start, v["learning_rate"], v["steps"])
        losses = valley.value(path)
        return Descent(valley, path, losses, behaviour(path, losses))

    def contour_panel(ex: LessonExplorer[Descent], ax: Axes) -> None:
        r = ex.result
        gx, gy = np.meshgrid(np.linspace(-lim[0], lim[0], 121), np.linspace(-lim[1], lim[1], 81))
        surface = r.valley.value(np.stack([gx, gy], -1))
        ax.contour(gx, gy, surface, levels=np.geomspace(0.05, surface.max(), 12), colors="grey", linewidths=0.6)
        ax.plot(r.path[:, 0], r.path[:, 1], "o-", ms=2.5, lw=1, color="crimson")
        ax.plot(*r.path[0], "ks", ms=5)
        ax.plot(0, 0, "k*", ms=9)
        ax.set_xlim(-lim[0], lim[0])
        ax.set_ylim(-lim[1], lim[1])
        ax.set_xlabel("x (shallow direction)")
        ax.set_ylabel("y (steep direction)")
        ax.set_title(f"path: {r.behaviour}")

    def loss_panel(ex: LessonExplorer[Descent], ax: Axes) -> None:
        losses = ex.result.losses
        ax.semilogy(np.arange(len(losses)), np.maximum(losses, 1e-12), ".-", ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("loss per step")

    def describe(ex: LessonExplorer[Descent]) -> str:
        r = ex.result
        steps = len(r.path) - 1
        left = " (left the map)" if steps < ex.values["steps"] else ""
        lr = ex.values["learning_rate"]  # in full: the slider's readout rounds 0.1995 to 2.0e-1
        return (
            f"{r.behaviour}: loss {r.losses[0]:.3g} → {r.losses[-1]:.3g} after {steps} steps{left} · "
            f"lr {lr:.4g} (ηk = {lr * r.valley.curvature:.4g}), stable while lr < 2/{r.valley.curvature:g} = "
            f"{r.valley.largest_stable_lr:.3g}"
        )

    controls = {
        "learning_rate": log_slider("learning rate", 0.02, 1e-3, 1.0),
        "steps": int_slider("steps", 50, 1, 200),
        "curvature": float_slider("steepness (y)", 10.0, 1.0, 50.0, 1.0),
    }
    kwargs.setdefault("title", "Gradient descent down a narrow valley")
    return LessonExplorer(compute, controls, (contour_panel, loss_panel), describe=describe, **kwargs)
