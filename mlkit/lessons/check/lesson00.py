"""The self-checks of lesson 00 (A tour: training versus inference), in exercise order."""

from __future__ import annotations

import numpy as np

from mlkit.data import Dataset
from mlkit.lessons.check.verdict import close_to, judge
from mlkit.models import MLP, count_params
from mlkit.train import TrainConfig, fit


def steps_in_training(answer: int | None, data: Dataset, config: TrainConfig) -> bool:
    """Exercise 00.1: how many gradient steps ``fit(model, data, config)`` takes in all."""
    per_epoch = len(data.train) // config.batch_size
    return judge(
        answer,
        lambda a: int(a) == config.epochs * per_epoch,
        "an epoch is one pass over the training split, one step per full mini-batch (the last partial batch "
        "is dropped): epochs * (len(data.train) // batch_size).",
        f"{per_epoch} steps per epoch; {len(data.train) % config.batch_size} digits sit out each epoch, a different "
        "few each time, since every epoch reshuffles.",
    )


def learning_rates_that_learn(
    answer: list[float] | None, data: Dataset, config: TrainConfig, rates=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
) -> bool:
    """Exercise 00.2: which of ``rates`` take the lesson's MLP past 90% validation accuracy with ``config``."""
    hint = (
        "for each rate train a fresh mlkit.MLP(64, (256, 256), 10, seed=0) with config.replace(learning_rate=rate); "
        "keep the rates whose run did not diverge and ended above 0.9: "
        "history.status != 'diverged' and history.val_acc[-1] > 0.9, in that order (a run that diverged at once "
        "keeps no epoch, so its history.val_acc is empty and [-1] of it raises IndexError)."
    )
    if answer is None:  # the truth costs six runs: only work it out for an answer
        return judge(None, bool, hint)
    final = {}
    for rate in rates:
        model = MLP(data.num_features, (256, 256), data.num_classes, seed=0)
        history = fit(model, data, config.replace(learning_rate=rate))
        final[rate] = history.val_acc[-1] if history.status != "diverged" and history.epochs else None
    good = sorted(rate for rate, acc in final.items() if acc is not None and acc > 0.9)
    return judge(
        answer,
        lambda a: len(a) == len(good) and np.allclose(sorted(float(r) for r in a), good),
        hint,
        "Final validation accuracy by learning rate: "
        + ", ".join(f"{rate:g} {'diverged' if acc is None else f'{acc:.0%}'}" for rate, acc in final.items())
        + ". Too large a step need not blow up: it can also leave the model stuck far from a good one.",
    )


def small_model_accuracy(answer: float | None, data: Dataset, config: TrainConfig) -> bool:
    """Exercise 00.3: the final validation accuracy of ``MLP(64, (32,), 10, seed=0)`` trained with ``config``."""

    hint = "train mlkit.MLP(64, (32,), 10, seed=0) with the lesson's config and read history.val_acc[-1]."
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    small, big = (MLP(data.num_features, hidden, data.num_classes, seed=0) for hidden in ((32,), (256, 256)))
    acc, big_acc = (fit(model, data, config).val_acc[-1] for model in (small, big))
    return judge(
        answer,
        close_to(acc, 0.005),
        hint,
        f"{count_params(small):,} parameters instead of {count_params(big):,} "
        f"({count_params(big) / count_params(small):.0f}x fewer) cost {(big_acc - acc) * 100:.1f} points of "
        "validation accuracy: 8x8 digits need little capacity.",
    )


def one_row(answer: int | None, predictor, data: Dataset, index: int = 3) -> bool:
    """Exercise 00.4: the predictor's label for ``data.val.raw_x[index]``, a single row without the batch axis."""
    label = int(predictor.predict(data.val.raw_x[index : index + 1])[0])
    return judge(
        answer,
        lambda a: int(a) == label,
        f"a predictor takes a batch, shape (n, 64), even for one digit: data.val.raw_x[{index}:{index + 1}] or "
        f"data.val.raw_x[{index}].reshape(1, -1), then take element [0] of the answer.",
        "The batch axis stays even for one example: the compiled program was built for rows of 64 numbers.",
    )
