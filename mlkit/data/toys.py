"""Generated data sets: 2-D classification toys and a noisy 1-D regression curve.

Each generator takes a seed and returns ``(x, y)`` NumPy arrays, so a lesson can
make a fresh set at any size and noise level without a file. Classification
sets return ``x`` of shape ``(n, 2)`` and integer ``y``; the regression curve
returns ``x`` of shape ``(n, 1)`` and float ``y``.
"""

from __future__ import annotations

import numpy as np


def moons(n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(
        y[:, None] == 0,
        np.stack([np.cos(t), np.sin(t)], 1),
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1),
    )
    return _noisy(x, noise, rng), y


def circles(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small circle inside a larger one."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0.0, 2 * np.pi, n)
    radius = np.where(y == 0, 1.0, 0.45)
    x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    return _noisy(x, noise, rng), y


def spirals(n: int = 400, noise: float = 0.1, seed: int = 0, turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two arms spiralling out of the origin, half a turn apart."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    r = rng.uniform(0.05, 1.0, n)
    angle = 2 * np.pi * turns * r + np.pi * y
    x = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    return _noisy(x, noise, rng), y


def xor(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four quadrants; the label is whether x and y have the same sign."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 2))
    x = x + np.sign(x) * 0.05  # a thin margin around the axes
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    return _noisy(x, noise, rng), y


def blobs(n: int = 400, noise: float = 0.3, seed: int = 0, centers: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around centres spaced evenly on the unit circle."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % centers
    angle = 2 * np.pi * y / centers
    x = np.stack([np.cos(angle), np.sin(angle)], 1)
    return _noisy(x, noise, rng), y


def regression_curve(n: int = 40, noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy samples of ``sin(2 pi x)`` on [0, 1]: the classic overfitting curve."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 1.0, n))
    y = true_curve(x) + noise * rng.standard_normal(n)
    return x[:, None], y


def true_curve(x: np.ndarray) -> np.ndarray:
    """The noise-free function behind :func:`regression_curve`."""
    return np.sin(2 * np.pi * np.asarray(x))


def _noisy(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return x + noise * rng.standard_normal(x.shape)


GENERATORS = {
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "xor": xor,
    "blobs": blobs,
    "regression_curve": regression_curve,
}
