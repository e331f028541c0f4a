"""How live a dashboard feels: seconds from moving the learning-rate slider to the redrawn curves.

It lives with the lessons because it times their UI; ``python -m mlkit bench``
passes it to :func:`mlkit.tools.benchmarks.run`, which keeps the benchmark
itself free of widgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from flax import nnx

from mlkit.data import Dataset
from mlkit.lessons.widgets import TrainingDashboard, log_slider
from mlkit.train import TrainConfig


def redraw_seconds(
    data: Dataset, model_fn: Callable[[], nnx.Module], config: TrainConfig, rates: Sequence[float]
) -> dict:
    """Median seconds of ``TrainingDashboard.set_value("learning_rate", lr)`` over ``rates[1:]`` (the first
    change is a warm-up): a full retrain of ``config.epochs`` epochs plus the PNG redraws."""
    slider = log_slider("learning rate", config.learning_rate, 1e-4, 1.0)
    dash = TrainingDashboard(data, lambda d, values: model_fn(), config, {"learning_rate": slider}, threaded=False)
    seconds = []
    for i, lr in enumerate(rates):
        start = time.perf_counter()
        dash.set_value("learning_rate", lr)
        if i:
            seconds.append(time.perf_counter() - start)
    return {
        "method": "TrainingDashboard.set_value('learning_rate', ...): fit + PNG redraws",
        "epochs": config.epochs,
        "seconds": float(np.median(seconds)),
        "all_seconds": seconds,
    }
