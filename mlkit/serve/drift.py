"""A crude drift alarm: has the average served input moved away from the training average?

A frozen model's pre-processing remembers the training split's per-feature mean
and standard deviation (the artifact carries them). :class:`DriftWatch` keeps a
running mean of every row the server answers (an exponentially weighted mean
that remembers roughly the last ``window`` rows) and reports, per feature,

    z = (served mean - training mean) / training standard deviation

how many training standard deviations the average has moved. ``drifted`` is set
once ``min_rows`` rows have been seen and the largest ``|z|`` passes
``threshold``. For the digits, the test split's largest ``|z|`` is about 0.1;
every pixel + 8 gives 1.2 to 12.

It is crude, and says so, because:

- it sees only the mean of each feature: a change in spread, in how features go
  together, or in the mix of classes with the same average pixels passes unseen;
- z is an effect size (in training standard deviations), not a test: it does not
  shrink with more rows or say how surprising a value is, and taking the largest
  of many features raises the chance that one crosses the line by luck;
- the input may not have changed while the right answers did (concept drift), and
  only labelled feedback shows that;
- a model with no pre-processing statistics (kind "none") has nothing to compare
  with, and the watch reports itself unavailable.

Lesson 11 shows what drift does to accuracy; this is the cheap first signal a
server can raise without any labels.
"""

from __future__ import annotations

import threading

import numpy as np

from mlkit.data import Preprocessor


class DriftWatch:
    """Running per-feature mean of served rows against the training statistics (see the module doc)."""

    def __init__(
        self,
        preprocessor: Preprocessor | None,
        *,
        window: int = 500,
        threshold: float = 0.5,
        min_rows: int = 100,
    ):
        if window < 1:
            raise ValueError(f"window must be a whole number >= 1 (rows the mean remembers), got {window}.")
        self.window = window
        self.threshold = threshold
        self.min_rows = min_rows
        self._lock = threading.Lock()
        self.set_reference(preprocessor)

    def set_reference(self, preprocessor: Preprocessor | None) -> None:
        """Compare with these training statistics from now on (a reload brings new ones); the served mean stays."""
        with self._lock:
            self.available = preprocessor is not None and preprocessor.kind != "none"
            width = 0 if preprocessor is None else len(preprocessor.mean)
            self._mean = np.zeros(width) if preprocessor is None else preprocessor.mean.astype(np.float64)
            self._scale = np.ones(width) if preprocessor is None else preprocessor.scale.astype(np.float64)
            if getattr(self, "_sum", None) is None or len(self._sum) != width:
                self._reset(width)

    def reset(self) -> None:
        """Forget every row seen so far (e.g. after the cause of an alarm was fixed)."""
        with self._lock:
            self._reset(len(self._mean))

    def _reset(self, width: int) -> None:
        self._sum = np.zeros(width)  # weighted sum of rows, newest weighted most
        self._weight = 0.0  # sum of the weights: 1 - (1 - 1/window)^rows, the bias correction
        self.rows = 0

    def update(self, x: np.ndarray) -> None:
        """Add the rows ``x`` (n, features), in order, to the running mean."""
        n = len(x)
        if n == 0 or not self.available:
            return
        keep = 1.0 - 1.0 / self.window
        weights = (1.0 / self.window) * keep ** np.arange(n - 1, -1, -1, dtype=np.float64)
        with self._lock:
            if x.shape[1] != len(self._sum):
                return
            decay = keep**n
            self._sum = decay * self._sum + weights @ np.asarray(x, np.float64)
            self._weight = decay * self._weight + float(weights.sum())
            self.rows += n

    def z(self) -> np.ndarray:
        """Per feature, the served mean minus the training mean, in training standard deviations."""
        with self._lock:
            if not self.rows:
                return np.zeros(len(self._mean))
            return (self._sum / self._weight - self._mean) / self._scale

    def report(self, top: int = 5) -> dict:
        """What GET /drift answers: rows seen, the largest z-scores, and whether they pass the threshold."""
        z = self.z()
        worst = np.argsort(-np.abs(z))[:top] if len(z) else np.array([], int)
        largest = float(np.abs(z).max()) if len(z) and self.rows else 0.0
        with self._lock:
            served = self._sum / self._weight if self.rows else np.full(len(self._mean), np.nan)
            rows = self.rows
        return {
            "available": self.available,
            "rows": rows,
            "window": self.window,
            "threshold": self.threshold,
            "min_rows": self.min_rows,
            "max_abs_z": largest,
            "drifted": bool(self.available and rows >= self.min_rows and largest > self.threshold),
            "largest": [
                {
                    "feature": int(j),
                    "z": float(z[j]),
                    "served_mean": float(served[j]),
                    "training_mean": float(self._mean[j]),
                    "training_scale": float(self._scale[j]),
                }
                for j in worst
                if rows
            ],
            "method": (
                f"exponentially weighted mean of about the last {self.window} served rows, per feature, minus the "
                f"training mean, in training standard deviations; crude: means only, no test (see mlkit.serve.drift)"
            ),
        }
