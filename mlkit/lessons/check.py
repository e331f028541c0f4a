"""Self-checks for the lessons' exercises: pass your answer, get "Right" or a hint, never the solution.

Each check works the true answer out itself, from the data and models the
notebook already holds (or by training its own, with fixed seeds), so it is as
honest as the lesson's asserts. With no answer yet (``None``) a check prints
the hint and returns ``False`` without raising, so a notebook still runs top to
bottom. Worked solutions live in ``solutions/`` beside the notebooks; the test
suite runs every one of them against these checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flax import nnx

from mlkit.data import Dataset, with_preprocessor, with_train
from mlkit.infer import accuracy, freeze
from mlkit.infer.compress import lean
from mlkit.infer.drift import finetune_data
from mlkit.infer.postprocess import coverage, fit_temperature
from mlkit.models import MLP
from mlkit.train import TrainConfig, evaluate, fit


def judge(answer: Any, right: Callable[[Any], bool], hint: str, why: str = "") -> bool:
    """Print whether ``answer`` passes ``right``, with ``hint`` when it does not (or is missing)."""
    if answer is None:
        print(f"Not answered yet. Hint: {hint}")
        return False
    try:
        ok = bool(right(answer))
    except (TypeError, ValueError):
        ok = False
    print(f"Right. {why}".strip() if ok else f"Not quite ({answer!r}). Hint: {hint}")
    return ok


def close_to(expected: float, tolerance: float) -> Callable[[Any], bool]:
    return lambda answer: abs(float(answer) - expected) <= tolerance


def choice(expected: str) -> Callable[[Any], bool]:
    return lambda answer: str(answer).strip().lower() == expected


# ---------------------------------------------------------------- 00-03 (tour, data, forward pass, loss)


# ---------------------------------------------------------------- 04-07 (backprop, training loop, overfitting, tuning)


# ---------------------------------------------------------------- 08 inference


def twice_standardised(answer: tuple[float, float] | None, predictor, data: Dataset) -> bool:
    """Exercise 08.1: (fraction answered, fraction right of those) at threshold 0.9, inputs standardised twice."""
    answered, right = coverage(predictor.predict_proba(data.val.x), data.val.y, 0.9)
    return judge(
        answer,
        lambda a: close_to(answered, 0.01)(a[0]) and close_to(right, 0.01)(a[1]),
        "use coverage(predictor.predict_proba(data.val.x), data.val.y, 0.9): data.val.x is already standardised, "
        "and the predictor standardises again.",
        f"It still answers {answered:.0%} of the digits confidently, and only {right:.0%} of those are right: "
        "confidence says nothing when the inputs are wrong.",
    )


def unsure_at(answer: int | None, predictor, data: Dataset, threshold: float = 0.5) -> bool:
    """Exercise 08.2: how many test digits get "unsure" at ``threshold``."""
    n = int(np.sum(predictor.predict_proba(data.test.raw_x).max(1) < threshold))
    return judge(
        answer,
        lambda a: int(a) == n,
        "count the rows whose largest probability is below the threshold: (probs.max(1) < 0.5).sum().",
        "A lower threshold leaves fewer digits unsure, and lets more mistakes through.",
    )


def temperature_side(answer: str | None, predictor, data: Dataset) -> bool:
    """Exercise 08.3: is the temperature that calibrates the lesson's own model "above" or "below" 1?"""
    side = "above" if fit_temperature(predictor.predict_proba(data.val.raw_x), data.val.y) > 1 else "below"
    return judge(
        answer,
        choice(side),
        "fit_temperature(predictor.predict_proba(data.val.raw_x), data.val.y): on validation, never on test.",
        "Above 1 means the model was overconfident; below 1, underconfident (dropout and batch norm can do that).",
    )


# ---------------------------------------------------------------- 10 lean models


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


# ---------------------------------------------------------------- 11 adaptability


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
    truth = kept["replay"] > kept["plain"]
    return judge(
        answer,
        lambda a: bool(a) is truth and isinstance(a, bool),
        "fine-tune two copies at learning_rate=1e-2, one on the 100 new digits and one on those plus 100 old "
        "ones (with_train, then with_preprocessor(..., data.preprocessor)); compare evaluate(tuned, data.val).",
        f"Original validation accuracy after fine-tuning: {kept['plain']:.1%} without replay, "
        f"{kept['replay']:.1%} with it.",
    )
