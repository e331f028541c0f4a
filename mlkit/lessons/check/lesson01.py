"""The self-checks of lesson 01 (Data and pre-processing), in exercise order."""

from __future__ import annotations

import numpy as np

from mlkit.data import Dataset, read_shipped, with_train
from mlkit.lessons.check.verdict import boolean, close_to, judge
from mlkit.models import MLP
from mlkit.train import TrainConfig, fit


def stored_order_matters(answer: bool | None, data: Dataset) -> bool:
    """Exercise 01.1: with shuffling on, does storing the digits sorted by label move validation accuracy by a point?"""
    hint = (
        "train mlkit.MLP(64, (64,), 10, seed=0) with mlkit.TrainConfig(epochs=15) on data and on sorted_data "
        "(shuffle on for both) and compare history.val_acc[-1]."
    )
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    order = np.argsort(data.train.y, kind="stable")
    sorted_data = with_train(data, data.train.raw_x[order], data.train.y[order])
    config = TrainConfig(epochs=15, progress=False)
    accs = [fit(MLP(data.num_features, (64,), 10, seed=0), d, config).val_acc[-1] for d in (data, sorted_data)]
    matters = abs(accs[0] - accs[1]) > 0.01
    return judge(
        answer,
        boolean(matters),
        hint,
        f"Validation accuracy {accs[0]:.1%} as stored, {accs[1]:.1%} sorted: each epoch deals a fresh random "
        "order, so the stored one no longer reaches the batches.",
    )


def better_batch_size(answer: int | None, data: Dataset, sizes=(8, 256), epochs: int = 15) -> bool:
    """Exercise 01.2: which of ``sizes`` ends ``epochs`` epochs (learning rate 1e-3) with higher validation accuracy."""
    hint = (
        "train mlkit.MLP(64, (64,), 10, seed=0) with mlkit.TrainConfig(epochs=15, batch_size=b) for b = 8 and 256; "
        "compare history.val_acc[-1]. How many steps does an epoch take at each size?"
    )
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    acc = {
        size: fit(
            MLP(data.num_features, (64,), data.num_classes, seed=0),
            data,
            TrainConfig(epochs=epochs, batch_size=size, progress=False),
        ).val_acc[-1]
        for size in sizes
    }
    best = max(acc, key=acc.__getitem__)
    return judge(
        answer,
        lambda a: int(a) == best,
        hint,
        "; ".join(f"Batch {s}: {len(data.train) // s} steps per epoch, {acc[s]:.1%}" for s in sizes)
        + ". At the same learning rate an epoch of small batches takes many more steps, each noisier.",
    )


def mnist_at_a_glance(answer: tuple[float, int] | None) -> bool:
    """Exercise 01.3: ("mnist5k"'s smallest class share, its largest pixel value)."""

    images, labels = read_shipped("mnist5k")
    share, top = float(np.bincount(labels).min() / len(labels)), int(images.max())
    return judge(
        answer,
        lambda a: close_to(share, 0.005)(a[0]) and int(a[1]) == top,
        "images, labels = mlkit.data.read_shipped('mnist5k'); np.bincount(labels) / len(labels) and images.max().",
        f"Balanced ({share:.1%} for the rarest digit), but 28x28 pixels from 0 to {top}, not 8x8 from 0 to 16: "
        "standardised, both reach the model as numbers on the same scale.",
    )
