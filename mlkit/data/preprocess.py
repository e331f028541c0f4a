"""Pre-processing fitted on the training split only, applied the same way in training and inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preprocessor:
    """Per-feature standardisation ``(x - mean) / scale``, fitted on training data.

    Works on NumPy and JAX arrays alike, so the frozen predictor applies exactly
    the arithmetic that training used.
    """

    mean: np.ndarray
    scale: np.ndarray
    kind: str = "standardize"
    floor: float = 0.0

    @classmethod
    def fit(cls, x: np.ndarray, kind: str = "standardize", floor: float = 0.0) -> Preprocessor:
        """Learn the statistics from ``x`` (the training split only).

        ``floor`` (a fraction of the widest feature's spread) is for features that share
        one unit, like pixels: a near-blank border pixel would otherwise turn a rare
        stroke into a huge input. Features in different units keep ``floor=0``.
        """
        x = np.asarray(x, np.float32)
        if kind == "none":
            return cls(np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32), kind)
        if kind != "standardize":
            raise ValueError(f"preprocess must be 'standardize' or 'none', got {kind!r}")
        with np.errstate(over="ignore", invalid="ignore"):  # a value whose square passes float32: named below
            mean, std = x.mean(axis=0), x.std(axis=0)
        _check_finite(x, mean, std)
        lowest = max(floor * float(std.max()), 1e-6)  # a feature that never varies keeps a finite scale
        return cls(mean, np.maximum(std, lowest).astype(np.float32), kind, floor)

    def __call__(self, x):
        return (x - self.mean[None, :]) / self.scale[None, :]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "kind": self.kind, "floor": self.floor}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        return cls(
            np.asarray(d["mean"], np.float32),
            np.asarray(d["scale"], np.float32),
            d.get("kind", "standardize"),
            d.get("floor", 0.0),
        )


_F32_MAX = float(np.finfo(np.float32).max)


def _check_finite(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """Refuse finite features whose float32 statistics are not finite (NaN or infinite features are left
    to the checks that name them as such: ``fit`` refuses them before training)."""
    bad = ~(np.isfinite(mean) & np.isfinite(std)) & np.isfinite(x).all(axis=0)
    if not bad.any():
        return
    k = int(np.argmax(bad))
    r = int(np.argmax(np.abs(x[:, k])))
    raise ValueError(
        f"Feature {k} cannot be standardised: it holds {x[r, k]:.4g} (row {r} of the training split). "
        f"Standardising squares each value's distance from the feature's mean in float32, whose range ends at "
        f"±{_F32_MAX:.2g}, so a value more than about {np.sqrt(_F32_MAX):.2g} from the mean makes the spread "
        f"infinite. Fix the value if it is a mistake, or rescale the feature (divide the column by a power of ten)."
    )
