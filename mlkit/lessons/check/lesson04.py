"""The self-checks of lesson 04 (Backpropagation by hand, then gradient descent), in exercise order."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mlkit.lessons.byhand import Valley, gradient_descent
from mlkit.lessons.check.verdict import judge


def relu_backward(answer: Callable | None) -> bool:
    """Exercise 04.1: ``backward(params, x, y, h, p)`` for lesson 04's network with relu in place of tanh."""

    rng = np.random.default_rng(1)
    params = {
        "W1": rng.normal(size=(2, 8)), "b1": rng.normal(size=8), "W2": rng.normal(size=(8, 2)), "b2": np.zeros(2),
    }  # fmt: skip
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)

    def loss(ps):
        logits = jnp.maximum(x @ ps["W1"] + ps["b1"][None], 0) @ ps["W2"] + ps["b2"][None]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(y)[:, None], 1).mean()

    h = np.maximum(x @ params["W1"] + params["b1"], 0)
    p = np.exp(np.asarray(jax.nn.log_softmax(h @ params["W2"] + params["b2"])))

    def right(backward: Callable) -> bool:
        truth = jax.grad(loss)({k: jnp.asarray(v, jnp.float32) for k, v in params.items()})
        mine = backward(params, x, y, h, p)
        return all(np.allclose(mine[k], truth[k], rtol=1e-4, atol=1e-5) for k in params)

    return judge(
        answer,
        right,
        "copy backward and change only the line that goes back through the activation: relu's slope is 1 where "
        "a unit is on (h > 0) and 0 where it is off.",
        "dz1 = dh * (h > 0): the forward pass still keeps all that the backward pass needs, and both checks pass.",
    )


def fastest_learning_rate(answer: float | None, curvature: float = 40.0, steps: int = 200) -> bool:
    """Exercise 04.2: the learning rate that leaves the valley's loss lowest after ``steps`` steps.

    Within 0.0015 below or 0.0005 above it: past it the loss climbs steeply towards the limit 2/k."""

    valley = Valley(curvature)

    def right(a) -> bool:
        grid = np.arange(0.0005, valley.largest_stable_lr, 0.0005)
        final = [valley.value(gradient_descent(valley.grad, (-4.5, 1.5), lr, steps)[-1]) for lr in grid]
        best = float(grid[int(np.argmin(final))])
        return best - 0.0015 <= float(a) <= best + 0.0005

    fastest = 2 / (1 + curvature)
    return judge(
        answer,
        right,
        f"set the steepness to {curvature:g} and {steps} steps, then raise the learning rate until the final loss "
        "stops falling. Which factor, |1 - lr| or |1 - lr·k|, is the larger on each side of that point?",
        f"About 2/(1+k) = {fastest:.4f}, where both directions shrink by the same factor, {1 - fastest:.3f} per step: "
        "even the best step removes under 5% of the error along the valley, so a steep valley needs many steps.",
    )


def network_regimes(answer: dict | None, forward: Callable, backward: Callable, params: dict, x, y) -> bool:
    """Exercise 04.3: at learning rates 0.5, 5 and 20, does the moons network's loss fall every step ("smooth"),
    rise at some steps yet end lower ("bumpy"), or end higher than it started ("diverged")?"""

    def label(lr: float) -> str:
        trained, losses = {k: v.copy() for k, v in params.items()}, []
        for _ in range(300):
            loss, (h, p) = forward(trained, x, y)
            losses.append(float(loss))
            for name, grad in backward(trained, x, y, h, p).items():
                trained[name] -= lr * grad
        if not np.isfinite(losses[-1]) or losses[-1] > losses[0]:
            return "diverged"
        return "bumpy" if (np.diff(losses) > 0).any() else "smooth"

    rates = (0.5, 5, 20)
    return judge(
        answer,
        lambda a: {lr: str(a[lr]).strip().lower() for lr in rates} == {lr: label(lr) for lr in rates},
        "answer a dict like {0.5: 'smooth', 5: '...', 20: '...'}: rerun the training cell with each learning "
        "rate and look at np.diff(losses) (any rise?) and at losses[-1] against losses[0].",
        "At 5 some direction of the loss surface is too steep for the step, so the loss bounces, yet the shallow "
        "directions move ten times faster than at 0.5 and it ends lowest: the network's version of 0.158 "
        "beating 0.1 on the valley. At 20 the bounces win.",
    )
