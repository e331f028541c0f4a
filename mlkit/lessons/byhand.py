"""The maths of lessons 02-04 written by hand in NumPy: forward pass, softmax, cross-entropy, gradient descent.

Nothing here is used for training; it is the arithmetic the library does,
spelled out so a learner can read it, and the lessons and
``tests/test_explorers.py`` check it against flax and ``jax.grad``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------- 02 forward pass

# NumPy twins of mlkit.models.ACTIVATIONS (gelu in jax's default tanh form)
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # = 1 / (1 + e^-z), without overflow
    "gelu": lambda z: 0.5 * z * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))),
}


def layer_sizes(num_features: int, width: int, depth: int, num_classes: int) -> list[int]:
    """Sizes of every layer of an MLP, input to output: ``[features, width, ..., width, classes]``."""
    return [num_features, *[width] * depth, num_classes]


def mlp_params(sizes: Sequence[int]) -> int:
    """Parameters of an MLP: each Linear holds an in x out kernel and out biases."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def mlp_flops(sizes: Sequence[int], batch: int = 1, bias: bool = False) -> int:
    """FLOPs of one forward pass: 2·in·out per Linear per example (a multiply and an add per weight).

    ``bias=True`` adds one addition per output. Activations are not counted.
    """
    return batch * sum(2 * a * b + (b if bias else 0) for a, b in itertools.pairwise(sizes))


def init_params(sizes: Sequence[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random (kernel, bias) pairs at flax's default scale: kernel std 1/sqrt(fan_in), zero bias."""
    rng = np.random.default_rng(seed)
    return [
        ((rng.standard_normal((a, b)) / math.sqrt(a)).astype(np.float32), np.zeros(b, np.float32))
        for a, b in itertools.pairwise(sizes)
    ]


def model_params(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (kernel, bias) pairs of an ``mlkit.MLP`` (without batch norm), input layer first."""
    return [(np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])) for layer in [*model.layers, model.head]]


def forward(params: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray, activation: str = "relu") -> np.ndarray:
    """Logits of an MLP: ``act(x @ W + b)`` for each hidden layer, then ``x @ W + b``."""
    act = ACTIVATIONS[activation]
    for i, (kernel, bias) in enumerate(params):
        x = x @ kernel + bias[None, :]
        if i < len(params) - 1:
            x = act(x)
    return x


def softmax(z: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis; the largest logit is subtracted first so exp cannot overflow."""
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- 03 loss


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``log(softmax(z))`` computed as ``z - max - log(sum(exp(z - max)))``: finite for any finite logits."""
    shifted = z - z.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def cross_entropy(logits: np.ndarray, label: int) -> float:
    """Cross-entropy of one example from its logits: ``-log softmax(logits)[label]``."""
    return float(-log_softmax(np.asarray(logits, np.float64))[label])


def cross_entropy_grad(logits: np.ndarray, label: int) -> np.ndarray:
    """Gradient of the cross-entropy with respect to the logits: ``softmax(logits) - one_hot(label)``."""
    logits = np.asarray(logits, np.float64)
    return softmax(logits) - np.eye(len(logits))[label]


# ---------------------------------------------------------------- 04 gradient descent


@dataclass(frozen=True)
class Valley:
    """``f(x, y) = (x² + curvature·y²) / 2``: shallow along x, steep across y, lowest at (0, 0)."""

    curvature: float = 10.0

    def value(self, p):
        """Works on NumPy and JAX arrays, so ``jax.grad(valley.value)`` checks ``grad``."""
        return 0.5 * (p[..., 0] ** 2 + self.curvature * p[..., 1] ** 2)

    def grad(self, p: np.ndarray) -> np.ndarray:
        return np.stack([p[..., 0], self.curvature * p[..., 1]], -1)

    @property
    def largest_stable_lr(self) -> float:
        """Above ``2 / (steepest curvature)`` each step overshoots by more than it corrects."""
        return 2.0 / max(1.0, self.curvature)


def gradient_descent(
    grad: Callable[[np.ndarray], np.ndarray],
    start: Sequence[float],
    learning_rate: float,
    steps: int,
    limit: float = 1e6,
) -> np.ndarray:
    """Points visited by ``steps`` steps of ``p ← p − lr·grad(p)``; stops early once ``|p|`` passes ``limit``."""
    path = [np.asarray(start, np.float64)]
    for _ in range(steps):
        path.append(path[-1] - learning_rate * grad(path[-1]))
        if np.abs(path[-1]).max() > limit:
            break
    return np.array(path)


def behaviour(path: np.ndarray, losses: np.ndarray, tol: float = 1e-3) -> str:
    """How a descent went, named from its points alone: "diverged" if the loss grew, else "<shape>, <outcome>".

    Shape: "zig-zag" if some coordinate's step ever reverses direction (it overshot the bottom
    along that direction: on the valley, learning rate x curvature between 1 and 2), "smooth" if
    none does (at most 1). Outcome: "converged" (loss below ``tol``) or "too slow" (the steps ran out first).
    """
    if not np.isfinite(losses[-1]) or losses[-1] > losses[0]:
        return "diverged"
    moves = np.diff(path, axis=0)
    shape = "zig-zag" if (moves[1:] * moves[:-1] < 0).any() else "smooth"
    return f"{shape}, {'converged' if losses[-1] < tol else 'too slow'}"
