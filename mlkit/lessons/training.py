"""Ready-made dashboards for the training lessons (00, 05-07), built from :mod:`mlkit.lessons.widgets`.

Each function returns a :class:`~mlkit.lessons.widgets.TrainingDashboard`; a notebook
shows it, a test drives it with ``set_value``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from mlkit.data import Dataset, load_dataset, shifts, toys, with_train, with_train_size
from mlkit.lessons import plots
from mlkit.lessons.widgets import (
    TrainingDashboard,
    accuracy_panel,
    boundary_panel,
    choice_slider,
    dropdown,
    float_slider,
    int_slider,
    log_slider,
    loss_panel,
)
from mlkit.models import ACTIVATIONS, MLP
from mlkit.train import TrainConfig


def playground(seed: int = 0, **kwargs) -> TrainingDashboard:
    """A TensorFlow-Playground-like dashboard: a 2-D data set, a network, its decision boundary as it trains."""
    controls = {
        "dataset": dropdown("data set", ["moons", "circles", "spirals", "xor", "blobs"]),
        "noise": float_slider("noise", 0.05, 0.0, 0.5, 0.05),  # low enough for the spirals to show their arms
        "width": int_slider("width", 16, 2, 64),
        "depth": int_slider("hidden layers", 2, 1, 4),
        "activation": dropdown("activation", [a for a in ACTIVATIONS if a != "linear"], "tanh"),
        "learning_rate": log_slider("learning rate", 1e-2, 1e-4, 1.0),
        "epochs": int_slider("epochs", 40, 5, 200, 5),
    }
    return TrainingDashboard(
        lambda v: load_dataset(v["dataset"], n=400, noise=v["noise"], seed=seed),
        lambda data, v: MLP(2, (v["width"],) * v["depth"], data.num_classes, activation=v["activation"], seed=seed),
        TrainConfig(batch_size=16, seed=seed),
        controls,
        (boundary_panel, loss_panel),
        data_keys=("dataset", "noise"),
        title="Playground: watch the boundary form",
        **kwargs,
    )


def digits_lab(data: Dataset, seed: int = 0, **kwargs) -> TrainingDashboard:
    """Learning rate, width, depth, batch size and epochs for an MLP on a digit set."""
    controls = {
        "learning_rate": log_slider("learning rate", 1e-3, 1e-5, 10.0),
        "width": int_slider("width", 128, 8, 512, 8),
        "depth": int_slider("hidden layers", 2, 1, 4),
        "batch_size": int_slider("batch size", 32, 8, 256, 8),
        "epochs": int_slider("epochs", 20, 1, 60),
    }
    return TrainingDashboard(
        data,
        lambda d, v: MLP(d.num_features, (v["width"],) * v["depth"], d.num_classes, seed=seed),
        TrainConfig(seed=seed),
        controls,
        (loss_panel, accuracy_panel),
        title="Train an MLP on the digits",
        **kwargs,
    )


WEIGHT_DECAYS = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # the overfitting lab's stops


def overfitting_lab(data: Dataset, seed: int = 0, **kwargs) -> TrainingDashboard:
    """Training-set size, width, dropout and weight decay over the training and validation curves."""
    controls = {
        "train_size": int_slider("training examples", 100, 20, len(data.train), 10),
        "width": int_slider("width", 256, 8, 512, 8),
        "dropout": float_slider("dropout", 0.0, 0.0, 0.9, 0.1),
        "weight_decay": choice_slider("weight decay", WEIGHT_DECAYS, 1e-4),  # 1, 3, 10: the values exercises ask
        "epochs": int_slider("epochs", 100, 10, 300, 10),
    }
    return TrainingDashboard(
        lambda v: with_train_size(data, v["train_size"], seed=seed),
        lambda d, v: MLP(d.num_features, (v["width"],) * 2, d.num_classes, dropout=v["dropout"], seed=seed),
        TrainConfig(batch_size=16, seed=seed),
        controls,
        (linear_loss_panel, accuracy_panel),
        data_keys=("train_size",),
        title="Overfitting: shrink the data, grow the model",
        **kwargs,
    )


def linear_loss_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
    """Losses on a linear axis, where a rising validation loss is easy to see."""
    if dashboard.history is not None:
        plots.curves(dashboard.history, "loss", ax=ax, log=False)


def capacity_curve(seed: int = 0) -> Dataset:
    """Lesson 06's noisy sine: 16 training points, and 74 validation points so that its loss is a steady judge."""
    return load_dataset("regression_curve", n=100, noise=0.25, seed=seed, val_fraction=0.74, test_fraction=0.1)


def capacity_lab(seed: int = 0, **kwargs) -> TrainingDashboard:
    """Fit the noisy sine curve with networks of growing capacity and watch the fit and the losses.

    It starts with a network that overfits (2 layers of 64 for 3000 epochs: its validation loss turns
    around early, then triples), so that less width, depth or time visibly helps."""
    data = capacity_curve(seed)
    controls = {
        "width": int_slider("width", 64, 1, 256),
        "depth": int_slider("hidden layers", 2, 1, 3),
        "activation": dropdown("activation", ["tanh", "relu"]),
        "epochs": int_slider("epochs", 3000, 100, 3000, 100),
    }

    def fit_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
        if dashboard.model is not None:
            plots.regression_fit(dashboard.model, dashboard.data, ax=ax, truth=toys.true_curve)

    return TrainingDashboard(
        data,
        lambda d, v: MLP(1, (v["width"],) * v["depth"], 1, activation=v["activation"], seed=seed),
        TrainConfig(batch_size=16, learning_rate=3e-3, seed=seed),  # 1e-2 diverges for 256 tanh units
        controls,
        (fit_panel, loss_panel),
        title="Capacity: fit a noisy curve",
        **kwargs,
    )


def augmented_digits(data: Dataset, copies: int = 8, severity: float = 0.3) -> Dataset:
    """``data`` with ``copies`` shifted and ``copies`` rotated versions of every training digit added (lesson 06).

    At severity 0.3 a shift is about half a pixel of an 8x8 digit and a turn 13.5 degrees, in a random
    direction per copy: changes that leave a digit the same digit. Validation and test are untouched.
    """
    shape = data.image_shape
    if shape is None:
        raise ValueError(f"augmented_digits needs an image set (with image_shape), got {data.name!r}.")
    raw = data.train.raw_x
    made = [raw]
    for seed in range(copies):
        made += [shifts.translate(raw, shape, severity, seed=seed), shifts.rotate(raw, shape, severity, seed=seed)]
    return with_train(data, np.concatenate(made), np.tile(data.train.y, len(made)))
