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


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration by confidence bin: (mean confidence, accuracy, row count) of the rows whose top
    probability falls in each of ``bins`` equal bins over [0, 1]; nan where a bin is empty.

    A calibrated model is right 90% of the time when it says 90%: accuracy equals confidence in every bin.
    """
    probs, y = np.asarray(probs), np.asarray(y)
    confidence, right = probs.max(1), probs.argmax(1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, right, bins) / counts
    return mean_confidence, accuracy, counts


def calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over the rows' bins."""
    confidence, accuracy, counts = reliability(probs, y, bins)
    filled = counts > 0
    return float(np.sum(counts[filled] * np.abs(confidence[filled] - accuracy[filled])) / counts.sum())


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (T > 1) or sharpened (T < 1): ``softmax(logits / T)``, computed from the
    probabilities themselves (``log p`` is the logits up to a constant per row). The ranking, and so
    every label, stays the same."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-30, None)) / temperature
    logits -= logits.max(1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(1, keepdims=True)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the cross-entropy of ``with_temperature(probs, T)`` on (held-out) ``y``.

    Temperature scaling (Guo et al., 2017): one number fitted on validation data, not on the test split.
    A golden-section search over log T in [1/20, 20]: the loss is smooth and has one minimum there.
    """
    y = np.asarray(y)

    def loss(log_t: float) -> float:
        p = with_temperature(probs, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-30, None))))

    low, high, golden = -np.log(20.0), np.log(20.0), (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = high - golden * (high - low), low + golden * (high - low)
        low, high = (low, b) if loss(a) < loss(b) else (a, high)
    return float(np.exp((low + high) / 2))
