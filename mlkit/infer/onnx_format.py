"""A portable artifact: the frozen function as one standard ``.onnx`` file, run by ONNX Runtime.

``save_onnx`` converts the predictor's whole function (pre-processing, model,
softmax, the parameters as initializers) with jax2onnx, a maintained JAX→ONNX
converter, with a symbolic batch dimension ``b``; one input ``x`` (float32
``[b, features]``), one output ``probabilities`` (or ``values`` for
regression). Labels, task and the pre-processing statistics travel in the
model's ``metadata_props`` under the key ``mlkit``, as JSON, which loading checks
field by field as a jax.export artifact's ``metadata.json`` is (:mod:`mlkit.infer.metadata`:
what one refuses, the other refuses). Any ONNX runtime can
run the file; plain ``onnxruntime`` needs nothing from mlkit::

    session = onnxruntime.InferenceSession("model.onnx")
    probabilities = session.run(None, {"x": rows})[0]

``load_onnx`` wraps such a file in an :class:`OnnxPredictor`: the same
``predict`` / ``predict_proba`` and input checks as any :class:`Predictor`.
Both need the optional extra: ``pip install -e '.[onnx]'`` in the kit's folder.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np

from mlkit.infer.metadata import ONNX_FORMAT, Metadata, parse
from mlkit.infer.onnx_rules import graph_problem
from mlkit.infer.predictor import Predictor
from mlkit.infer.text import text_metadata, with_text
from mlkit.storage import parse_json, read_file, write_atomically

MAX_BYTES = 1 << 30  # the largest .onnx file load_onnx reads; its max_bytes argument raises it
INSTALL = "ONNX export and loading need the optional extra: pip install -e '.[onnx]' in the kit's folder"


def save_onnx(predictor: Predictor, path: str | os.PathLike) -> Path:
    """Write ``predictor`` as a standard ONNX file at ``path`` (atomically); returns the path."""
    try:
        from jax2onnx import to_onnx
    except ImportError as e:
        raise ImportError(f"{INSTALL} (jax2onnx is missing).") from e
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"Refusing to save over {path}: it is a directory. An ONNX artifact is one file; "
            f"choose a path ending in .onnx."
        )
    output = "probabilities" if predictor.task == "classification" else "values"
    try:
        # The converter's own code uses flax APIs that flax marks deprecated and broadcasts by rank promotion:
        # neither is the user's concern, so neither a warning filter nor a strict rank setting may break the export.
        # Its serializer also logs a WARNING for an intermediate value it has no type for (the token ids' cast,
        # [b, n]), though the file it writes runs and gives the same answers (tests/test_onnx.py checks them).
        with warnings.catch_warnings(), jax.numpy_rank_promotion("allow"), _quiet("onnx_ir"):
            warnings.simplefilter("ignore", DeprecationWarning)
            model = to_onnx(
                predictor.fn,
                [("b", predictor.num_features)],
                model_name="mlkit_predictor",
                input_names=["x"],
                output_names=[output],
            )
    except Exception as e:  # the converter raises many kinds of error for what it cannot express
        raise ValueError(
            f"This predictor cannot be exported to ONNX: jax2onnx {_version('jax2onnx')} failed with "
            f"{type(e).__name__}: {str(e)[:300]}. A predictor loaded from a jax.export artifact cannot be "
            f"converted again: freeze the trained model instead. The jax.export artifact "
            f"(mlkit.save_predictor(predictor, DIR)) works for every predictor."
        ) from e
    outputs = model.graph.output[0].type.tensor_type.shape.dim
    width = outputs[1].dim_value if len(outputs) == 2 else 0
    if predictor.task == "classification" and len(predictor.labels) != width:
        raise ValueError(
            f"A classifier needs one label per output: expected {width} labels, "
            f"got {len(predictor.labels)}. Pass labels= to freeze or Predictor."
        )
    entry = model.metadata_props.add()
    entry.key, entry.value = "mlkit", json.dumps(_metadata(predictor, output))
    return write_atomically(path, model.SerializeToString())


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only errors from ``logger`` while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def load_onnx(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Predictor:
    """The :class:`OnnxPredictor` saved at ``path`` by :func:`save_onnx` (in a TextPredictor if it holds a tokenizer).

    The file must be a plain file of at most ``max_bytes``, checked before it is read, and hold
    only what mlkit's exports write (:mod:`mlkit.infer.onnx_rules`: no external data, only their
    operators, bounded sizes). Only then does ONNX Runtime parse it, in this process.
    """
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"{INSTALL} (onnxruntime is missing).") from e
    path = Path(path)
    try:
        data = read_file(path.resolve(), cap=max_bytes, what=str(path), limit="max_bytes")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No ONNX artifact at {path}: expected a .onnx file written by "
            f"mlkit.save_predictor(predictor, PATH, format='onnx')."
        ) from None
    problem = _graph_problem(data)
    if problem:
        raise ValueError(f"{path} is not an mlkit predictor: {problem}. Re-save it with mlkit.save_predictor.")
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(
            f"{path} is not a model ONNX Runtime {onnxruntime.__version__} can load "
            f"({type(e).__name__}: {str(e)[:200]}). Copy it again or re-save it."
        ) from e
    metadata = _read_metadata(session, path)
    return with_text(OnnxPredictor(session, metadata, path), metadata.json)


class OnnxPredictor(Predictor):
    """A :class:`Predictor` whose function runs in ONNX Runtime: same checks, same answers, any batch size."""

    def __init__(self, session: Any, metadata: Metadata, source: Path | None = None):
        self.session = session
        self.source = source
        self._output = [metadata.json["output"]]
        super().__init__(
            self._infer, metadata.features, metadata.labels, task=metadata.task, preprocessor=metadata.preprocessor
        )

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self._output, {"x": x})[0]

    def _run(self, x) -> np.ndarray:
        x = self.validate(x)
        return self.checked(self._infer(x), x)  # the same output check as the JAX predictor's

    def executable(self, batch: int) -> Callable:
        """ONNX Runtime takes every batch size as it comes: nothing to compile per bucket."""
        return self._infer


def _metadata(predictor: Predictor, output: str) -> dict:
    return {
        "format": ONNX_FORMAT,
        "task": predictor.task,
        "labels": [label.item() if isinstance(label, np.generic) else label for label in predictor.labels],
        "num_features": predictor.num_features,
        "output": output,
        "preprocessor": None if predictor.preprocessor is None else predictor.preprocessor.to_dict(),
        "versions": {"mlkit": _version("mlkit"), "jax2onnx": _version("jax2onnx")},
        **text_metadata(predictor),
    }


def _graph_problem(data: bytes) -> str | None:
    """What in the model's bytes mlkit refuses before ONNX Runtime sees them (:mod:`mlkit.infer.onnx_rules`)."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(f"{INSTALL} (onnx is missing).") from e
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception as e:  # protobuf's DecodeError, or a RuntimeError from its C++ parser
        return f"it is not an ONNX protobuf ({type(e).__name__}), not a model ONNX Runtime can load"
    return graph_problem(model)


def _read_metadata(session: Any, path: Path) -> Metadata:
    """The mlkit description inside the model, checked as metadata.json is, and against the model's input and output."""
    raw = session.get_modelmeta().custom_metadata_map.get("mlkit")
    try:
        found = parse_json(raw.encode(), f"{path}'s mlkit metadata") if raw else None
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != ONNX_FORMAT:
        raise ValueError(
            f'{path} is an ONNX model but not an mlkit predictor: it lacks the "mlkit" metadata '
            f"that mlkit.save_predictor(predictor, PATH, format='onnx') writes."
        )
    inputs, outputs = session.get_inputs(), session.get_outputs()
    gives = outputs[0].shape if len(outputs) == 1 else None
    width = gives[1] if gives is not None and len(gives) == 2 and isinstance(gives[1], int) else None
    metadata = parse(found, f"{path}'s mlkit metadata", outputs=width)
    takes = inputs[0].shape if len(inputs) == 1 else None
    if not (
        takes is not None
        and inputs[0].name == "x"
        and inputs[0].type == "tensor(float)"
        and len(takes) == 2
        and takes[1] == metadata.features
        and outputs[0].name == found["output"]
        and outputs[0].type == "tensor(float)"
    ):
        raise ValueError(
            f"{path}: its mlkit metadata (input x: float[b, {metadata.features}], output {found['output']}: "
            f"float[b, {width}]) does not match the model's input {takes} and output {gives}. Re-save the artifact."
        )
    return metadata


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
