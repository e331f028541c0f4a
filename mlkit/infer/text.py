"""Text in: a predictor that takes raw strings, and its vocabulary in saved artifacts.

Strings cannot enter an XLA program, so a :class:`~mlkit.infer.predictor.TextPredictor`
(defined beside :class:`Predictor`, which ``freeze`` returns for a text set; importable
from here too) splits the work at its boundary: :meth:`~mlkit.data.text.Tokenizer.encode`
turns the texts into rows of token ids (checking them: an empty text, a non-string or one
longer than ``mlkit.data.text.MAX_CHARS`` characters is refused; more than ``max_len``
words are truncated), and the same compiled function as any :class:`Predictor` runs on
those rows. The vocabulary travels with the saved artifact, in its ``metadata.json`` (or
an ``.onnx`` file's metadata) under ``"tokenizer"``: :func:`text_metadata` writes that
entry and :func:`with_text` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from mlkit.data import Dataset
from mlkit.data.text import Tokenizer
from mlkit.infer.metadata import tokenizer_problem
from mlkit.infer.postprocess import answer
from mlkit.infer.predictor import Predictor, TextPredictor, freeze

__all__ = ["TextPredictor", "freeze_text", "route", "text_metadata", "text_problem", "with_text"]


def freeze_text(model: nnx.Module, data: Dataset) -> TextPredictor:
    """:func:`~mlkit.infer.freeze` for a model trained on a text set, refusing any other set: the result takes
    raw strings."""
    if data.tokenizer is None:
        raise ValueError(f"Data set {data.name!r} is not a text set (it has no tokenizer); use mlkit.freeze.")
    return TextPredictor(freeze(model, preprocessor=data.preprocessor, labels=data.labels), data.tokenizer)


def text_metadata(predictor: Predictor) -> dict:
    """What a saved artifact adds to its metadata for ``predictor``: ``{"tokenizer": ...}``, or nothing."""
    return {"tokenizer": predictor.tokenizer.to_dict()} if isinstance(predictor, TextPredictor) else {}


def text_problem(metadata: dict) -> str | None:
    """What is wrong with a jax.export artifact's ``"tokenizer"`` entry (if it has one), or None."""
    if "tokenizer" not in metadata:
        return None
    return tokenizer_problem(metadata["tokenizer"], metadata["input"]["shape"][1])


def with_text(predictor: Predictor, metadata: dict[str, Any]) -> Predictor:
    """``predictor`` as a :class:`TextPredictor` when ``metadata`` (an artifact's) holds a tokenizer."""
    if "tokenizer" not in metadata:
        return predictor
    return TextPredictor(predictor, Tokenizer.from_dict(metadata["tokenizer"]))


def route(probs: np.ndarray, labels: Sequence, actions: Mapping[str, str], threshold: float) -> list[str]:
    """What to do with each message: ``actions[label]`` for a confident answer, ``actions["unsure"]``
    below ``threshold`` (:func:`mlkit.infer.postprocess.answer`), e.g. a refund for a dissatisfied customer."""
    return [actions[str(a)] for a in answer(probs, labels, threshold)]
