"""The self-checks of lesson 08 (Inference: freeze, process, deploy), in exercise order."""

from __future__ import annotations

import numpy as np

from mlkit.data import Dataset
from mlkit.infer.postprocess import coverage, fit_temperature
from mlkit.lessons.check.verdict import choice, close_to, judge


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
