"""The self-checks of lesson 02 (The forward pass and the architecture), in exercise order."""

from __future__ import annotations

import numpy as np
from flax import nnx

from mlkit import bench
from mlkit.lessons import byhand
from mlkit.lessons.check.verdict import choice, close_to, judge
from mlkit.models import MLP, count_params


def gelu_flops_ratio(answer: float | None, batch: int = 32) -> bool:
    """Exercise 02.1: XLA's FLOPs over the 2·in·out formula for ``MLP(64, (16, 16), 10, activation="gelu")``."""

    sizes = [64, 16, 16, 10]

    def counted(activation: str) -> float:
        graphdef, state = nnx.split(MLP(64, (16, 16), 10, activation=activation, seed=0))
        return bench.flops(lambda s, x: nnx.merge(graphdef, s)(x), state, np.zeros((batch, 64), np.float32))

    ratios = {activation: counted(activation) / byhand.mlp_flops(sizes, batch) for activation in ("relu", "gelu")}
    extra = (ratios["gelu"] - ratios["relu"]) * byhand.mlp_flops(sizes, batch) / (batch * sum(sizes[1:-1]))
    return judge(
        answer,
        close_to(ratios["gelu"], 0.01),
        "in a copy of the FLOPs cell, start with model = mlkit.MLP(64, (16, 16), 10, activation='gelu', seed=0) "
        "so that nnx.split(model) gives the gelu network, and read XLA / formula from its output.",
        f"relu {ratios['relu']:.3f}, gelu {ratios['gelu']:.3f}: gelu costs about {extra:.0f} more operations per "
        "hidden value, still small beside the matrix products.",
    )


def mnist_params(answer: int | None) -> bool:
    """Exercise 02.2: the parameter count of ``MLP(784, (256, 256), 10)``."""

    n = count_params(MLP(784, (256, 256), 10, seed=0))
    return judge(
        answer,
        lambda a: int(a) == n,
        "per layer in × out weights + out biases, for 784 → 256 → 256 → 10; check with mlkit.count_params.",
        "The first layer holds three quarters of them: the input size decides the cost of the first kernel.",
    )


def what_training_changes(answer: str | None) -> bool:
    """Exercise 02.3: which numbers in the explorer's status line training would change (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "training changes the values of W and b, never their shapes. Which of the status line's numbers follow "
        "from the shapes alone?",
        "Parameters and FLOPs follow from the layer sizes alone; training changes only the weights' values, and "
        "so the probabilities.",
    )
