"""The self-checks of lesson 10 (Making the model lean), in exercise order."""

from __future__ import annotations

import numpy as np
from flax import nnx

from mlkit.data import Dataset
from mlkit.infer import accuracy, freeze
from mlkit.infer.compress import lean
from mlkit.lessons.check.verdict import choice, close_to, judge
from mlkit.models import MLP
from mlkit.train import TrainConfig, fit


def pruning_cliff(answer: float | None, data: Dataset, sparsities=(0.5, 0.7, 0.8, 0.95)) -> bool:
    """Exercise 10.1: without batch norm, the first sparsity whose validation accuracy is over 5 points down."""
    model = MLP(data.num_features, (256, 256), data.num_classes, seed=0)
    fit(model, data, TrainConfig(epochs=20, progress=False))
    base = accuracy(freeze(model, data), data.val)
    cliff = next((s for s in sparsities if accuracy(lean(model, data, "float32", s), data.val) < base - 0.05), None)
    return judge(
        answer,
        lambda a: (a is None and cliff is None) or (cliff is not None and close_to(cliff, 1e-9)(a)),
        "train MLP(64, (256, 256), 10, seed=0) for 20 epochs without batch norm, then compare "
        "accuracy(lean(model, data, 'float32', s), data.val) with the unpruned model for each sparsity.",
        "Without batch norm the weights are spread more evenly, so magnitude says more about importance.",
    )


def smallest_int8(answer: float | None, model: nnx.Module, data: Dataset) -> bool:
    """Exercise 10.2: the largest sparsity (a multiple of 0.05) at which int8 stays within a point on validation."""
    base = accuracy(freeze(model, data), data.val)
    grid = np.round(np.arange(0.0, 0.951, 0.05), 2)
    ok = [s for s in grid if accuracy(lean(model, data, "int8", float(s)), data.val) >= base - 0.01]
    best = float(max(ok)) if ok else 0.0
    return judge(
        answer,
        close_to(best, 1e-9),
        "in the lab, choose int8 and raise the sparsity in steps of 0.05 until the validation accuracy "
        "falls more than one point below the float32 model's.",
        "Past it, each step costs more accuracy than the one before: the cliff.",
    )


def fewer_bytes_faster(answer: str | None) -> bool:
    """Exercise 10.3: why bfloat16 weights need not run faster on this CPU (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "at batch 1 a call is mostly fixed overhead; and what does the CPU compute in, when it has no bfloat16 units?",
        "The CPU converts bfloat16 back to float32 to multiply, and at this size the call is overhead-bound anyway.",
    )
