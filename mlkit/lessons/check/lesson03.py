"""The self-checks of lesson 03 (The loss: one number for "how wrong"), in exercise order."""

from __future__ import annotations

import numpy as np

from mlkit.lessons import byhand
from mlkit.lessons.check.verdict import boolean, close_to, judge


def equal_logits(answer: tuple[float, float] | None, num_classes: int = 3) -> bool:
    """Exercise 03.1: (loss, gradient of the true logit) when all ``num_classes`` logits are equal."""

    logits = np.zeros(num_classes)
    loss, grad = byhand.cross_entropy(logits, 0), float(byhand.cross_entropy_grad(logits, 0)[0])
    return judge(
        answer,
        lambda a: close_to(loss, 1e-3)(a[0]) and close_to(grad, 1e-3)(a[1]),
        "equal logits give every class probability 1/3; the loss is -log p_true and the gradient p - one_hot.",
        f"Loss ln 3 = {loss:.4f}, a blind guess; the true logit's gradient is 1/3 - 1 = {grad:.3f} and each "
        "other's +1/3, so a step raises the true logit and lowers the others.",
    )


def shifted_naive_finite(answer: bool | None) -> bool:
    """Exercise 03.2: does the naive formula give a finite loss for ``wrong`` once ``z.max()`` is subtracted?"""
    z = np.array([0.0, 200.0, 0.0], np.float32)
    with np.errstate(divide="ignore"):  # log(0) is the point
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        finite = bool(np.isfinite(-np.log(p[0])))
    return judge(
        answer,
        boolean(finite),
        "after the shift the true class's exponent is exp(0 - 200): what is that in float32, and what is -log of it?",
        "Subtracting the maximum stops exp from overflowing, but the true class's probability e^-200 still "
        "underflows to 0 and -log 0 is inf: only logsumexp(z) - z_true never forms that probability.",
    )


def best_constant_abs(answer: float | None, y: np.ndarray, step: float = 0.025) -> bool:
    """Exercise 03.3: the constant that minimises the mean absolute error on targets ``y`` (to within ``step``)."""
    median = float(np.median(np.asarray(y)))
    return judge(
        answer,
        close_to(median, step),
        "replace the squared error by jnp.abs(c - y) in mse_of_constant, redraw, and read off the lowest point.",
        f"The median ({median:.3f}, against the mean {float(np.mean(y)):.3f}): under absolute error the best "
        "constant has as many targets above it as below, so a few far-off targets move it less.",
    )
