"""Inference: a frozen, compiled function from raw inputs to answers.

``freeze`` takes a trained model and the pre-processing it was trained with and
bakes both into one pure function with the parameters as constants: no
optimiser, no gradients, dropout off, batch-norm statistics fixed. A
:class:`Predictor` checks its input at the boundary, pads each batch up to one
of a few bucket sizes (so a stream of odd batch sizes compiles a handful of
times, not once per size) and returns labels or probabilities.

:func:`mlkit.save_predictor` writes a deployable artifact and
:func:`mlkit.load_predictor` reads it back (see :mod:`mlkit.infer.artifact`).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mlkit.data import Dataset, Preprocessor, Split
from mlkit.data.text import Tokenizer
from mlkit.models import eval_view

BUCKETS = (1, 4, 16, 64, 256, 1024)


class Predictor:
    """A frozen model: ``predict`` gives labels, ``predict_proba`` class probabilities.

    ``fn`` maps a float32 batch ``(n, num_features)`` of raw inputs to
    probabilities (classification) or values (regression). ``preprocessor`` is
    the pre-processing already inside ``fn``, kept to describe it (saved in the
    artifact); ``params`` are the arrays ``fn`` closes over, kept to count bytes.
    """

    def __init__(
        self,
        fn: Callable,
        num_features: int,
        labels: Sequence = (),
        *,
        task: str = "classification",
        buckets: Sequence[int] = BUCKETS,
        preprocessor: Preprocessor | None = None,
        params: Any = None,
    ):
        self.fn = fn
        self.num_features = num_features
        self.labels = tuple(labels)
        self.task = task
        self.buckets = tuple(sorted(buckets))
        self.preprocessor = preprocessor
        self.params = params
        self._label_array = np.asarray(self.labels)
        self._executables: dict[int, Callable] = {}
        self._compiles = 0
        self._compiling = threading.Lock()

    @property
    def nbytes(self) -> int | None:
        """Bytes of the arrays baked into ``fn`` (None when unknown, e.g. after loading an artifact)."""
        if self.params is None:
            return None
        return sum(int(np.asarray(leaf).nbytes) for leaf in jax.tree.leaves(self.params))

    @property
    def compiles(self) -> int:
        """How many times this predictor has compiled (once per batch-size bucket it has met)."""
        return self._compiles

    def predict(self, x) -> np.ndarray:
        """Readable labels (classification) or predicted values (regression), one per row of ``x``."""
        return self._labels(self._run(x))

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities, shape ``(n, num_classes)``; each row sums to 1."""
        if self.task != "classification":
            raise ValueError("predict_proba needs a classifier; this predictor does regression, use predict.")
        return self._run(x)

    def __call__(self, x) -> np.ndarray:
        return self.predict(x)

    def answer(self, x) -> dict:
        """What a served request gets for the rows ``x``: ``{"labels", "probabilities"}`` or ``{"values"}``.

        It is :meth:`validate`, :meth:`outputs` and :meth:`reply` in a row, the path ``predict`` takes too; a
        server that batches calls the three apart (validate per request, one ``outputs`` per batch, ``reply`` per
        request on its own rows), so a served answer and ``predict`` cannot differ.
        """
        x = self.validate(x)
        return self.reply(self.outputs(x), x)

    def reply(self, out: np.ndarray, x: np.ndarray) -> dict:
        """The answer for the raw outputs ``out`` of the validated rows ``x``, after the finite-output check."""
        out = self.checked(out, x)
        if self.task == "classification":
            return {"labels": self._labels(out).tolist(), "probabilities": out.tolist()}
        return {"values": out[:, 0].tolist()}

    def _labels(self, out: np.ndarray) -> np.ndarray:
        return self._label_array[out.argmax(-1)] if self.task == "classification" else out[:, 0]

    def validate(self, x) -> np.ndarray:
        """``x`` as a float32 ``(n, num_features)`` array, or a ValueError that says what was expected.

        The checks are on every call, so they are kept to a few NumPy operations (well under 1 µs for one row).
        """
        return self._checked_input(x, finite=True)

    def _checked_input(self, x, *, finite: bool) -> np.ndarray:
        """:meth:`validate`; with ``finite=False`` the NaN check is left to the compiled program's guard."""
        if not (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == self.num_features):
            x = self._converted(x)  # the common case (float32 rows of the right width) skips every conversion
        if finite and not _all_finite(x):
            raise ValueError(_nonfinite_input(x))
        return x

    def _converted(self, x) -> np.ndarray:
        if isinstance(x, np.ma.MaskedArray):
            raise ValueError(
                "Expected a plain array; a masked array's mask would be ignored. Fill the masked values "
                "(x.filled(value)) or drop those rows (x[~x.mask.any(axis=1)].data) first."
            )
        try:
            x = np.asarray(x)
        except ValueError:  # nested lists of different lengths or depths: numpy refuses a ragged array
            raise ValueError(self._ragged_problem(x)) from None
        if x.dtype != np.float32:
            if x.dtype.kind not in "iuf":
                raise ValueError(self._shape_problem(x))
            with np.errstate(over="ignore"):  # 1e39 becomes infinity, refused by the finite check
                x = x.astype(np.float32)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(self._shape_problem(x))
        return x

    def _expected(self) -> str:
        return f"a 2-D array of shape (n, {self.num_features}): one row of {self.num_features} numbers per example"

    def _shape_problem(self, x: np.ndarray) -> str:
        if x.dtype.kind not in "iuf":
            return (
                f"Expected {self._expected()}; got dtype {x.dtype} (strings, None or booleans among the numbers?). "
                f"Convert with np.asarray(x, dtype=np.float32)."
            )
        if x.ndim != 2:
            hint = " For a single example use x.reshape(1, -1)." if x.size == self.num_features else ""
            return f"Expected {self._expected()}; got shape {x.shape}.{hint}"
        return f"Expected {self._expected()}; got {x.shape[1]} features per row (shape {x.shape})."

    def _ragged_problem(self, rows) -> str:
        n = self.num_features
        bad = [i for i, row in enumerate(rows) if not (isinstance(row, (list, tuple)) and len(row) == n)]
        if bad:
            return f"Expected {self._expected()}; rows {bad[:10]} do not hold {n} numbers."
        return f"Expected {self._expected()}; rows hold lists where numbers go."

    def _run(self, x) -> np.ndarray:
        # The compiled programs turn a row with NaN or infinity into NaN outputs (``_guarded``), so one check of
        # the outputs covers both; ``checked`` then names the inputs' rows first, with validate's message.
        x = self._checked_input(x, finite=False) if self.guarded else self.validate(x)
        return self.checked(self.outputs(x), x)

    guarded = True  # whether inputs are plain rows and ``executable``'s programs make a non-finite row's outputs NaN

    @staticmethod
    def checked(out: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``out`` if every answer is finite; else a ValueError naming the rows of ``x`` whose answers are not.

        Rows of ``x`` that hold NaN or infinity are named first, with :meth:`validate`'s message.
        """
        if not _all_finite(out):
            if not _all_finite(x):
                raise ValueError(_nonfinite_input(x))
            rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
            raise ValueError(
                f"Rows {rows[:10].tolist()} gave NaN or infinite outputs: their inputs (largest magnitude "
                f"{np.abs(x[rows]).max():.3g}) overflow the model's float32 arithmetic. Expected values near the "
                f"training data's range; check the units or scaling of those rows."
            )
        return out

    def outputs(self, x: np.ndarray, shape: int | None = None) -> np.ndarray:
        """The raw outputs (probabilities, or values of shape (n, 1)) for validated rows ``x``, not yet checked.

        Every model call is padded to exactly ``shape`` rows when given (a server's fixed shape: an answer then
        does not depend on which rows shared its call), else to the next bucket; more rows go in chunks.
        """
        n = len(x)
        if shape is None and (run := self._executables.get(n)) is not None:  # exactly a compiled size: no padding
            return np.asarray(run(x))
        step = shape or self.buckets[-1]
        if n > step:
            return np.concatenate([self.outputs(x[i : i + step], shape) for i in range(0, n, step)])
        size = shape or self.buckets[bisect.bisect_left(self.buckets, n)]
        if size != n:
            x = np.concatenate([x, np.zeros((size - n, x.shape[1]), np.float32)])
        return np.asarray(self.executable(size)(x))[:n]

    def executable(self, batch: int) -> Callable:
        """The compiled function for exactly ``batch`` rows (compiled on first use, once even across threads)."""
        run = self._executables.get(batch)
        if run is None:
            with self._compiling:
                run = self._executables.get(batch)
                if run is None:
                    spec = jax.ShapeDtypeStruct((batch, self.num_features), jnp.float32)
                    run = self._executables[batch] = jax.jit(_guarded(self.fn)).lower(spec).compile()
                    self._compiles += 1
        return run


def _guarded(fn: Callable) -> Callable:
    """``fn`` with every output of a row that holds NaN or infinity set to NaN (the same answers otherwise).

    The input check then rides on the finite-output check, inside the compiled program: one host-side test
    per call instead of two (each costs about as much as the program's own call at batch 1).
    """

    def run(x):
        out = fn(x)
        finite = jnp.isfinite(x).all(axis=1, keepdims=True)
        return jnp.where(finite, out, jnp.nan)

    return run


def _all_finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds only finite numbers: the fewest NumPy calls for its size (a small one as a list)."""
    # a sum is finite only if every term is; an overflowing sum goes the exact way
    return (a.size <= 128 and math.isfinite(sum(a.ravel().tolist()))) or bool(np.isfinite(a).all())


def _nonfinite_input(x: np.ndarray) -> str:
    rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    return (
        f"Expected finite numbers; rows {rows[:10].tolist()} hold NaN or infinity. Fill or drop them before predicting."
    )


class TextPredictor(Predictor):
    """A :class:`Predictor` whose inputs are texts: ``predict(["I want my money back"])``.

    ``numeric`` is the predictor of token-id rows it wraps (a frozen one, or one loaded from an
    artifact); its compiled programs, buckets and labels are this predictor's.
    """

    def __init__(self, numeric: Predictor, tokenizer: Tokenizer):
        if numeric.num_features != tokenizer.max_len:
            raise ValueError(
                f"The model reads rows of {numeric.num_features} token ids but the tokenizer writes "
                f"{tokenizer.max_len}; freeze the model with the data set whose tokenizer it was trained on."
            )
        super().__init__(
            numeric.fn,
            numeric.num_features,
            numeric.labels,
            task=numeric.task,
            buckets=numeric.buckets,
            preprocessor=numeric.preprocessor,
            params=numeric.params,
        )
        self.numeric = numeric
        self.tokenizer = tokenizer

    guarded = False  # texts are validated by the tokenizer (the numeric predictor's programs still guard)

    @property
    def compiles(self) -> int:
        return self.numeric.compiles

    def validate(self, x) -> np.ndarray:
        """The texts ``x`` as float32 rows of token ids, or a ValueError naming the text that cannot be read."""
        return self.tokenizer.encode(x).astype(np.float32)

    def outputs(self, x: np.ndarray, shape: int | None = None) -> np.ndarray:
        return self.numeric.outputs(x, shape)

    def executable(self, batch: int):
        return self.numeric.executable(batch)


def accuracy(predictor: Predictor, split: Split) -> float:
    """Fraction of ``split``'s raw inputs the predictor classifies as their class id ``y``."""
    return float(np.mean(predictor.predict_proba(split.raw_x).argmax(1) == split.y))


def freeze(
    model: nnx.Module,
    data: Dataset | None = None,
    *,
    preprocessor: Preprocessor | None = None,
    labels: Sequence | None = None,
) -> Predictor:
    """A :class:`Predictor` that applies ``data``'s pre-processing, the model in inference mode and softmax.

    The parameters are copied out of the model now, so training the model further
    does not change the predictor. For a text set (``data.tokenizer``) the predictor
    takes raw strings: a :class:`TextPredictor`.
    """
    if data is not None:
        preprocessor = preprocessor or data.preprocessor
        labels = data.labels if labels is None else labels
        task = data.task
    else:
        task = "classification" if labels else "regression"
    if preprocessor is None:
        raise ValueError("freeze needs the pre-processing used in training: pass the Dataset or preprocessor=.")
    graphdef, state = nnx.split(eval_view(model))
    state = jax.tree.map(jnp.array, state)  # a private copy: later training can't reach it

    def frozen(x):
        outputs = nnx.merge(graphdef, state)(preprocessor(x))
        return jax.nn.softmax(outputs, axis=-1) if task == "classification" else outputs

    predictor = Predictor(
        frozen,
        len(preprocessor.mean),
        labels or (),
        task=task,
        preprocessor=preprocessor,
        params={
            "model": nnx.filter_state(state, nnx.Param, nnx.BatchStat),  # not the dropout RNG state
            "preprocessor": (preprocessor.mean, preprocessor.scale),
        },
    )
    return predictor if data is None or data.tokenizer is None else TextPredictor(predictor, data.tokenizer)
