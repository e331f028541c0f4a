"""The model a server answers with: a loaded, warmed-up, checked :class:`~mlkit.infer.Predictor`.

:func:`load_model` is the one way a server gets a model, at start and on every
reload, so a reload checks exactly what a start checks: the artifact loads (signed
with the server's key if it has one; otherwise its program is first run in a child
process unless this machine signed it, see :mod:`mlkit.infer.verify`), the batch
shape compiles (before any request waits on it) and one prediction on a typical row
(the training mean) comes out with the right shape, finite, and, for a classifier,
as probabilities. Anything else is a ValueError that names the file
and the problem, and the model already serving is left alone.

:meth:`ServedModel.outputs` is the call the batcher makes for a batch of rows;
:meth:`ServedModel.answer` turns those outputs into the JSON a client gets. They
split :meth:`Predictor.predict` and :meth:`Predictor.predict_proba` in two so a
classifier's labels and probabilities come from one model call, by the same
arithmetic (argmax over the probabilities, looked up in the labels).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlkit.data import Preprocessor
from mlkit.infer import Predictor, load_predictor, read_metadata
from mlkit.infer.predictor import TextPredictor
from mlkit.serve.settings import Settings


@dataclass
class ServedModel:
    """A predictor ready to serve, and what /metadata says about it.

    ``batch_shape`` is the one number of rows every model call is padded to
    (``None``: pad only to the predictor's next bucket).
    """

    predictor: Predictor
    path: Path
    batch_shape: int | None
    delay_s: float = 0.0
    loaded_at: float = field(default_factory=time.time)
    versions: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.predictor.task

    @property
    def num_features(self) -> int:
        return self.predictor.num_features

    @property
    def labels(self) -> list:
        return list(self.predictor.labels)

    @property
    def takes_texts(self) -> bool:
        """Whether clients send raw texts (a text model; the server tokenizes them) instead of rows of numbers."""
        return isinstance(self.predictor, TextPredictor)

    @functools.cached_property
    def rows(self) -> Predictor:
        """The predictor of numeric rows the batcher calls: the token-id model of a text predictor, else itself."""
        return self.predictor.numeric if isinstance(self.predictor, TextPredictor) else self.predictor

    @property
    def inputs(self) -> str:
        """What one example is, in a few words: "64 inputs", or "texts of up to 40 words"."""
        if self.takes_texts:
            return f"texts of up to {self.num_features} words"
        return f"{self.num_features} input" + ("s" if self.num_features != 1 else "")

    @property
    def request(self) -> str:
        """What a POST /predict body holds for this model, in words."""
        if self.takes_texts:
            return 'a JSON object {"inputs": ["a text", ...]}, one text per example'
        n = self.num_features
        return f'a JSON object {{"inputs": [[{n} numbers], ...]}}, one list of {n} raw features per example'

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's raw outputs for the float32 rows ``x`` (probabilities, or values of shape (n, 1))."""
        if self.delay_s:
            time.sleep(self.delay_s)
        n = len(x)
        if self.batch_shape is None or n > self.batch_shape:
            if self.task == "classification":
                return self.rows.predict_proba(x)
            return self.rows.predict(x)[:, None]
        if n < self.batch_shape:
            x = np.concatenate([x, np.zeros((self.batch_shape - n, x.shape[1]), np.float32)])
        return np.asarray(self.rows.executable(self.batch_shape)(x))[:n]

    @functools.cached_property
    def label_array(self) -> np.ndarray:
        """The labels, in label order, as one array (looked up by each answer's argmax)."""
        return np.asarray(self.predictor.labels)

    def answer(self, outputs: np.ndarray) -> dict:
        """The JSON body for these outputs: labels and probabilities, or values."""
        if self.task == "classification":
            return {"labels": self.label_array[outputs.argmax(-1)].tolist(), "probabilities": outputs.tolist()}
        return {"values": outputs[:, 0].tolist()}

    def describe(self) -> dict:
        """What a client needs to know to call this model (part of GET /metadata)."""
        pre = self.predictor.preprocessor
        if isinstance(self.predictor, TextPredictor):  # the words past max_words are not read
            given = {"shape": ["n"], "dtype": "string", "max_words": self.predictor.tokenizer.max_len}
        else:
            given = {"shape": ["n", self.num_features], "dtype": "float32"}
        return {
            "artifact": str(self.path),
            "format": "onnx" if self.path.suffix.lower() == ".onnx" and not self.path.is_dir() else "jax.export",
            "task": self.task,
            "labels": self.labels,
            "num_features": self.num_features,
            "input": given,
            "request": f"POST /predict with {self.request}",
            "output": ["labels", "probabilities"] if self.task == "classification" else ["values"],
            "batch_shape": self.batch_shape,
            "loaded_at": self.loaded_at,
            "versions": self.versions,
            "preprocessor": None if pre is None else {"kind": pre.kind, **_statistics(pre)},
        }


def load_model(
    path: str | os.PathLike,
    *,
    max_batch: int,
    fixed_shape: bool = True,
    delay_ms: float = 0.0,
    key: bytes | None = None,
) -> ServedModel:
    """Load the artifact at ``path``, compile what serving ``max_batch`` rows needs, and check one prediction.

    With ``key``, only an artifact signed with it loads.
    """
    path = Path(path)
    predictor = load_predictor(path, key=key)  # FileNotFoundError / ValueError with the artifact's own message
    if predictor.task not in ("classification", "regression"):
        raise ValueError(f"{path}: task must be classification or regression, got {predictor.task!r}.")
    versions = {}
    if path.is_dir():
        versions = read_metadata(path, key=key)["versions"]
    model = ServedModel(predictor, path, max_batch if fixed_shape else None, delay_ms / 1000, versions=versions)
    if fixed_shape:
        predictor.executable(max_batch)
    else:
        for bucket in predictor.buckets:
            predictor.executable(bucket)
            if bucket >= max_batch:
                break
    _check(model)
    return model


def load_for(settings: Settings, path: str | os.PathLike | None = None) -> ServedModel:
    """:func:`load_model` for a server with these settings (``path``: another artifact than ``settings.path``)."""
    return load_model(
        settings.path if path is None else path,
        max_batch=settings.max_batch,
        fixed_shape=settings.fixed_shape,
        delay_ms=settings.model_delay_ms,
        key=settings.key,
    )


class Incompatible(ValueError):
    """A reload would change the interface (task, input width or labels) that clients were told about."""


def check_compatible(old: ServedModel, new: ServedModel) -> None:
    """Refuse a reload that would change what clients send or get back; they were told by /metadata."""
    changed = [
        f"{what} {a!r} -> {b!r}"
        for what, a, b in (
            ("task", old.task, new.task),
            ("input", "texts" if old.takes_texts else "numbers", "texts" if new.takes_texts else "numbers"),
            ("input width", old.num_features, new.num_features),
            ("labels", old.labels, new.labels),
        )
        if a != b
    ]
    if changed:
        raise Incompatible(
            f"{new.path} answers a different question than the model being served ({'; '.join(changed)}). "
            f"A reload keeps the interface clients rely on; to change it, restart the server with the new artifact."
        )


def _check(model: ServedModel) -> None:
    """One prediction on a typical row, checked, so a reload never swaps in a model that cannot answer."""
    pre = model.predictor.preprocessor
    row = (pre.mean if pre is not None else np.zeros(model.num_features, np.float32)).astype(np.float32)[None, :]
    try:
        out = np.asarray(model.outputs(row))
    except Exception as e:  # whatever the runtime raises, the artifact is what is wrong
        raise ValueError(
            f"{model.path} loaded but cannot predict ({type(e).__name__}: {e}). Re-save the artifact."
        ) from e
    width = len(model.labels) if model.task == "classification" else 1
    if out.shape != (1, width) or not np.isfinite(out).all():
        raise ValueError(
            f"{model.path} loaded but its test prediction is wrong: expected {width} finite numbers for one row, "
            f"got shape {out.shape} ({out.ravel()[:5].tolist()}). Re-save the artifact."
        )
    if model.task == "classification" and not (abs(float(out.sum()) - 1) < 1e-3 and (out >= 0).all()):
        raise ValueError(
            f"{model.path} loaded but its outputs are not probabilities (they sum to {float(out.sum()):.4f}). "
            f"Re-save the artifact from mlkit.freeze."
        )


def _statistics(pre: Preprocessor) -> dict:
    return {"mean": pre.mean.tolist(), "scale": pre.scale.tolist()}
