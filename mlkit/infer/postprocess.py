"""Post-processing: from probabilities to what a user is told (the top few, or "unsure", and how often).

A frozen model's last step is softmax; what an application shows is a choice on
top of it. A confidence threshold trades coverage (how many inputs get an answer)
for accuracy on the answered ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNSURE = "unsure"


def top_k(probs: np.ndarray, labels: Sequence, k: int = 3) -> list[list[tuple[object, float]]]:
    """The ``k`` likeliest ``(label, probability)`` pairs of each row of ``probs``, likeliest first."""
    probs = np.atleast_2d(np.asarray(probs))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(labels[i], float(row[i])) for i in idx] for row, idx in zip(probs, order, strict=True)]


def answer(probs: np.ndarray, labels: Sequence, threshold: float = 0.0) -> np.ndarray:
    """Each row's likeliest label, or ``"unsure"`` where its probability is below ``threshold``."""
    probs = np.atleast_2d(np.asarray(probs))
    out = np.asarray(labels, dtype=object)[probs.argmax(1)]
    out[probs.max(1) < threshold] = UNSURE
    return out


def coverage(probs: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    """(fraction of rows answered, accuracy on the answered rows; nan when none is answered)."""
    probs = np.asarray(probs)
    answered = probs.max(1) >= threshold
    right = probs.argmax(1) == np.asarray(y)
    return float(answered.mean()), float(right[answered].mean()) if answered.any() else float("nan")
