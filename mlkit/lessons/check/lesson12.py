"""The self-checks of lesson 12 (Scaling out: one model, many devices), in exercise order."""

from __future__ import annotations

import jax

from mlkit.lessons.check.verdict import choice, judge
from mlkit.train import parallel


def rows_per_device(answer: int | None, batch_size: int, devices: int) -> bool:
    """Exercise 12.1: examples each of ``devices`` devices sees per step of a global batch of ``batch_size``."""

    rows = parallel.per_device_batch(batch_size, parallel.data_mesh(jax.devices()[:devices]))
    return judge(
        answer,
        lambda a: int(a) == rows,
        "the global batch is cut into equal slices, one per device (mlkit.train.parallel.per_device_batch).",
        "With one example per device, each step is all communication and no arithmetic worth sharing.",
    )


def refused_batch(answer: int | None, devices: int, options=(30, 32)) -> bool:
    """Exercise 12.2: which of ``options`` a mesh of ``devices`` devices refuses as a batch size."""
    refused = [b for b in options if b % devices]
    return judge(
        answer,
        lambda a: len(refused) == 1 and int(a) == refused[0],
        "a batch must split into equal slices, one per device: which size does not divide by the device count?",
        "Unequal slices would weight the small slices' examples more: a silently wrong gradient.",
    )


def same_numbers_why(answer: str | None) -> bool:
    """Exercise 12.3: why data-parallel training matches one device (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "write the mini-batch gradient as a mean, then split the sum into equal slices.",
        "The mean of equal-size slice means is the mean of the whole batch, so every device takes the same step.",
    )
