"""The model a server answers with: a loaded, warmed-up, checked :class:`~mlkit.infer.Predictor`.

:func:`load_model` is the one way a server gets a model, at start and on every
reload, so a reload checks exactly what a start checks: the artifact loads (signed
with the server's key if it has one; otherwise its program is first run in a child
process unless this machine signed it, see :mod:`mlkit.infer.verify`), the batch
shape compiles (before any request waits on it) and the answer for one typical row
(the training mean) passes the predictor's own checks and, for a classifier, is
probabilities. Anything else is a ValueError that names the file and the problem,
and the model already serving is left alone.

Validation, padding, the finite-output check and the labels are the predictor's
(``validate``, ``outputs``, ``reply``); this module only adds what serving needs:
the fixed batch shape, the optional delay, and what ``/metadata`` says.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlkit.infer import Predictor, load_predictor, read_metadata
from mlkit.infer.predictor import TextPredictor
from mlkit.serve.settings import Settings


@dataclass
class ServedModel:
    """A predictor ready to serve, and what /metadata says about it.

    ``batch_shape`` is the one number of rows every model call is padded to
    (``None``: pad only to the predictor's next bucket). ``max_input_z`` (0: no limit) is how many
    training standard deviations from the training mean a raw feature may lie (:meth:`check_range`).
    """

    predictor: Predictor
    path: Path
    batch_shape: int | None
    delay_s: float = 0.0
    loaded_at: float = field(default_factory=time.time)
    versions: dict = field(default_factory=dict)
    max_input_z: float = 0.0

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
        """The predictor's raw outputs for a batch of validated rows, every call padded to ``batch_shape``."""
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.predictor.outputs(x, self.batch_shape)

    def check_range(self, x: np.ndarray) -> None:
        """A ValueError naming the rows of ``x`` with a feature more than ``max_input_z`` training standard
        deviations from its training mean (the preprocessing statistics the artifact stores): the model's answer
        there is extrapolation, not a prediction (a regression asked about 1e30 answers about -1e30)."""
        pre = None if self.takes_texts else self.predictor.preprocessor
        if not self.max_input_z or pre is None or pre.kind == "none":
            return
        far = np.abs(x - pre.mean) > self.max_input_z * pre.scale
        if not far.any():
            return
        rows = np.flatnonzero(far.any(axis=1))
        i, j = int(rows[0]), int(np.flatnonzero(far[rows[0]])[0])
        raise ValueError(
            f"Rows {rows[:10].tolist()} hold values out of the training range: feature {j} of row {i} is "
            f"{float(x[i, j]):g}, more than {self.max_input_z:g} standard deviations from the training data's "
            f"{float(pre.mean[j]):g} ± {float(pre.scale[j]):g}, where the model's answer would be a guess. Check the "
            f"units and scaling of the inputs (the server's --max-input-z sets the limit, 0 lifts it)."
        )

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
            "preprocessor": None
            if pre is None
            else {"kind": pre.kind, "mean": pre.mean.tolist(), "scale": pre.scale.tolist()},
        }


def load_for(settings: Settings, path: str | os.PathLike | None = None) -> ServedModel:
    """Load the artifact at ``path`` (default ``settings.path``), compile what serving ``settings.max_batch`` rows
    needs, and check one answer; with ``settings.key``, only an artifact signed with it loads."""
    path = Path(settings.path if path is None else path)
    predictor = load_predictor(path, key=settings.key)  # FileNotFoundError / ValueError with the artifact's message
    if predictor.task not in ("classification", "regression"):
        raise ValueError(f"{path}: task must be classification or regression, got {predictor.task!r}.")
    versions = read_metadata(path, key=settings.key)["versions"] if path.is_dir() else {}
    shape = settings.max_batch if settings.fixed_shape else None
    delay_s = settings.model_delay_ms / 1000
    model = ServedModel(predictor, path, shape, delay_s, versions=versions, max_input_z=settings.max_input_z)
    for bucket in [shape] if shape else predictor.buckets:
        predictor.executable(bucket)
        if bucket >= settings.max_batch:
            break
    _check(model)
    return model


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
    """One answer for a typical row, checked, so a reload never swaps in a model that cannot answer."""
    pre = model.predictor.preprocessor
    row = (pre.mean if pre is not None else np.zeros(model.num_features, np.float32)).astype(np.float32)[None, :]
    try:
        out = np.asarray(model.outputs(row))
        width = len(model.labels) if model.task == "classification" else 1
        if out.shape != (1, width):
            raise ValueError(f"expected {width} numbers for one row, got shape {out.shape}")
        model.predictor.reply(out, row)  # the finite-output check every served answer passes
    except Exception as e:  # whatever the runtime raises, the artifact is what is wrong
        raise ValueError(
            f"{model.path} loaded but cannot answer ({type(e).__name__}: {e}). Re-save the artifact."
        ) from e
    if model.task == "classification" and not (abs(float(out.sum()) - 1) < 1e-3 and (out >= 0).all()):
        raise ValueError(
            f"{model.path} loaded but its outputs are not probabilities (they sum to {float(out.sum()):.4f}). "
            f"Re-save the artifact from mlkit.freeze."
        )
