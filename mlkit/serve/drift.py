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

It is also cheap for the server: :meth:`DriftWatch.update` only keeps the rows it
is given, and they are folded into the running mean together, once ``FOLD_ROWS``
have piled up or when the mean is read, which gives the same mean as folding them
in one call at a time (up to rounding) for a fraction of the cost per call.
"""

from __future__ import annotations

import threading

import numpy as np

from mlkit.data import Preprocessor

FOLD_ROWS = 512  # rows kept before they are folded into the running mean (it is always folded before it is read)


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
        self._pending: list[np.ndarray] = []  # rows given to update and not yet folded in, in order
        self._pending_rows = 0
        self.rows = 0

    def update(self, x: np.ndarray) -> None:
        """Add the rows ``x`` (n, features), in order, to the running mean (``x`` must not change afterwards)."""
        n = len(x)
        if n == 0 or not self.available:
            return
        with self._lock:
            if x.ndim != 2 or x.shape[1] != len(self._sum):
                return
            self._pending.append(x)
            self._pending_rows += n
            self.rows += n
            if self._pending_rows >= FOLD_ROWS:
                self._fold()

    def _fold(self) -> None:
        """Fold the kept rows into the running mean, oldest first (the lock is held)."""
        if not self._pending:
            return
        x = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        n = len(x)
        keep = 1.0 - 1.0 / self.window
        weights = (1.0 / self.window) * keep ** np.arange(n - 1, -1, -1, dtype=np.float64)
        decay = keep**n
        self._sum = decay * self._sum + weights @ np.asarray(x, np.float64)
        self._weight = decay * self._weight + float(weights.sum())

    def z(self) -> np.ndarray:
        """Per feature, the served mean minus the training mean, in training standard deviations."""
        with self._lock:
            self._fold()
            if not self.rows:
                return np.zeros(len(self._mean))
            return (self._sum / self._weight - self._mean) / self._scale

    def report(self, top: int = 5) -> dict:
        """What GET /drift answers: rows seen, the largest z-scores, and whether they pass the threshold."""
        z = self.z()
        worst = np.argsort(-np.abs(z))[:top] if len(z) else np.array([], int)
        largest = float(np.abs(z).max()) if len(z) and self.rows else 0.0
        with self._lock:
            self._fold()
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
