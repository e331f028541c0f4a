"""The self-checks of lesson 11 (Adaptability: drift, fine-tuning, forgetting), in exercise order."""

from __future__ import annotations

import numpy as np
from flax import nnx

from mlkit.data import Dataset, with_preprocessor, with_train
from mlkit.data.shifts import finetune_data
from mlkit.infer import accuracy, freeze
from mlkit.lessons.check.verdict import boolean, choice, judge
from mlkit.train import TrainConfig, evaluate, fit


def inverted_digits(answer: str | None) -> bool:
    """Exercise 11.1: why fine-tuning fails on inverted digits (a, b or c)."""
    return judge(
        answer,
        choice("a"),
        "an inverted digit's background is 16, not 0. Standardised with the original statistics, where is it large?",
        "The border pixels were almost always 0 in training, so their scale is tiny: a background of 16 becomes "
        "huge inputs, and the trained first layer turns them into confident nonsense that 100 examples cannot undo.",
    )


def labels_for_recovery(answer: int | None, model: nnx.Module, data: Dataset, target: float = 0.8) -> bool:
    """Exercise 11.2: the fewest labelled digits (a multiple of 20) that recover ``target`` of the rotate-0.6 drop."""
    frozen = freeze(model, data)
    base, hit = accuracy(frozen, data.val), accuracy(frozen, finetune_data(data, "rotate", 0.6, 20, seed=0).val)
    needed = None
    for n in range(20, 401, 20):
        small = finetune_data(data, "rotate", 0.6, n, seed=0)
        tuned = nnx.clone(model)
        fit(tuned, small, TrainConfig(epochs=20, batch_size=16, progress=False))
        if (evaluate(tuned, small.val)[1] - hit) / (base - hit) >= target:
            needed = n
            break
    return judge(
        answer,
        lambda a: needed is not None and int(a) == needed,
        "fine-tune a copy of the model on finetune_data(data, 'rotate', 0.6, n, seed=0) for n = 20, 40, ... and "
        "compute (tuned shifted val accuracy - frozen's) / (frozen original - frozen shifted).",
        "Recovery grows fast at first, then slowly: the last points of accuracy cost the most labels.",
    )


def replay_forgets_less(answer: bool | None, model: nnx.Module, data: Dataset) -> bool:
    """Exercise 11.3: does mixing 100 old digits into the fine-tuning set keep more of the original accuracy?"""
    small = finetune_data(data, "thicken", 0.6, 100, seed=0)
    old = np.random.default_rng(0).permutation(len(data.train))[:100]
    mixed = with_train(
        small,
        np.concatenate([small.train.raw_x, data.train.raw_x[old]]),
        np.concatenate([small.train.y, data.train.y[old]]),
    )
    mixed = with_preprocessor(mixed, data.preprocessor)
    kept = {}
    for name, sample in (("plain", small), ("replay", mixed)):
        tuned = nnx.clone(model)
        fit(tuned, sample, TrainConfig(epochs=20, batch_size=16, learning_rate=1e-2, progress=False))
        kept[name] = evaluate(tuned, data.val)[1]
    return judge(
        answer,
        boolean(bool(kept["replay"] > kept["plain"])),
        "fine-tune two copies at learning_rate=1e-2, one on the 100 new digits and one on those plus 100 old "
        "ones (with_train, then with_preprocessor(..., data.preprocessor)); compare evaluate(tuned, data.val).",
        f"Original validation accuracy after fine-tuning: {kept['plain']:.1%} without replay, "
        f"{kept['replay']:.1%} with it.",
    )
