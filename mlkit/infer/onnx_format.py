"""A portable artifact: the frozen function as one standard ``.onnx`` file, run by ONNX Runtime.

``save_onnx`` converts the predictor's whole function (pre-processing, model,
softmax, the parameters as initializers) with jax2onnx, a maintained JAX→ONNX
converter, with a symbolic batch dimension ``b``; one input ``x`` (float32
``[b, features]``), one output ``probabilities`` (or ``values`` for
regression). Labels, task and the pre-processing statistics travel in the
model's ``metadata_props`` under the key ``mlkit``, as JSON, which loading checks
field by field as a jax.export artifact's ``metadata.json`` is (:mod:`mlkit.infer.metadata`:
what one refuses, the other refuses), with the model's answers to ``ONNX_CHECK_ROWS`` check
rows. The file's last metadata entry, ``mlkit.signature``, is an HMAC of every byte before
it, made with the same keys as a directory's ``manifest.sig`` (:mod:`mlkit.infer.verify`).
Any ONNX runtime can run the file; plain ``onnxruntime`` needs nothing from mlkit::

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

from mlkit.infer.metadata import ONNX_CHECK_ROWS, ONNX_FORMAT, Metadata, check_rows, parse
from mlkit.infer.onnx_rules import graph_problem
from mlkit.infer.predictor import Predictor
from mlkit.infer.text import text_metadata, with_text
from mlkit.infer.verify import check_answers, machine_key, run_in_child, sign, signed_with
from mlkit.storage import parse_json, read_file, write_atomically

MAX_BYTES = 1 << 30  # the largest .onnx file load_onnx reads; its max_bytes argument raises it
SIGNATURE = "mlkit.signature"  # the last metadata entry: an HMAC of every byte before it (see mlkit.infer.verify)
INSTALL = "ONNX export and loading need the optional extra: pip install -e '.[onnx]' in the kit's folder"


def save_onnx(predictor: Predictor, path: str | os.PathLike, *, key: bytes | None = None) -> Path:
    """Write ``predictor`` as a standard ONNX file at ``path`` (atomically); returns the path.

    The file records the model's answers to a few check rows and is signed with ``key``, or with
    this machine's key when none is given (:mod:`mlkit.infer.verify`), as a jax.export directory is.
    """
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
    metadata = _metadata(predictor, output)
    rows = check_rows(predictor.num_features, metadata["preprocessor"], ONNX_CHECK_ROWS)
    answers = np.asarray(_session(model.SerializeToString()).run([output], {"x": rows})[0])
    if not np.isfinite(answers).all():
        raise ValueError("Cannot save this predictor: its answers to rows near the training mean hold NaN or infinity.")
    entry = model.metadata_props.add()
    entry.key, entry.value = "mlkit", json.dumps({**metadata, "check": {"outputs": answers.tolist()}})
    body = model.SerializeToString()
    signing_key = key if key is not None else machine_key(create=True)
    return write_atomically(path, body + (_signature(body, signing_key) if signing_key is not None else b""))


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


def load_onnx(
    path: str | os.PathLike,
    *,
    key: bytes | None = None,
    verify: bool | None = None,
    verify_timeout: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> Predictor:
    """The :class:`OnnxPredictor` saved at ``path`` by :func:`save_onnx` (in a TextPredictor if it holds a tokenizer).

    The file must be a plain file of at most ``max_bytes``, checked before it is read, and hold
    only what mlkit's exports write (:mod:`mlkit.infer.onnx_rules`: no external data, only their
    operators, bounded sizes); its mlkit metadata is checked as a jax.export artifact's is. The
    trust rules are the directory's too: with ``key``, a file not signed with it is refused;
    ``verify`` runs the model in a time-limited child process first, by default only when the file
    is not signed (with ``key`` or this machine's key), and its answers to the check rows must be
    the ones recorded when it was saved. Only then does ONNX Runtime load it in this process.
    """
    path = Path(path)
    try:
        data = read_file(path.resolve(), cap=max_bytes, what=str(path), limit="max_bytes")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No ONNX artifact at {path}: expected a .onnx file written by "
            f"mlkit.save_predictor(predictor, PATH, format='onnx')."
        ) from None
    model = _parse(data, path)
    problem = graph_problem(model)
    if problem:
        raise ValueError(f"{path} is not an mlkit predictor: {problem}. Re-save it with mlkit.save_predictor.")
    body, signature = _signed_part(model, data)
    if key is not None and not signed_with(body, signature, key):
        state = "has a signature that does not match this key" if signature else "is not signed"
        raise ValueError(f"{path} {state}, so it was not run. Ask for it signed with save_predictor(..., key=KEY).")
    metadata = _read_metadata(model, path)
    _check_graph(model, metadata, path)
    if verify or (verify is None and key is None and not signed_with(body, signature, machine_key())):
        _verify(data, metadata, path, verify_timeout)
    return with_text(OnnxPredictor(_session(data, path), metadata, path), metadata.json)


class OnnxPredictor(Predictor):
    """A :class:`Predictor` whose function runs in ONNX Runtime: same checks, same answers, any batch size."""

    guarded = False  # the file's graph has no NaN guard: the inputs are checked before the call

    def __init__(self, session: Any, metadata: Metadata, source: Path | None = None):
        self.session = session
        self.source = source
        self._output = [metadata.json["output"]]
        super().__init__(
            self._infer, metadata.features, metadata.labels, task=metadata.task, preprocessor=metadata.preprocessor
        )

    def _infer(self, x: np.ndarray) -> np.ndarray:
        # InferenceSession.run checks in Python that required inputs are fed, that OrtValues belong to this
        # session and that no WebGPU graph capture is on, then calls its C++ session: here one NumPy input x on
        # the CPU provider meets all three by construction, so the C++ call is made directly (about 1.5 µs a call).
        inner = getattr(self.session, "_sess", None)
        if inner is None:  # an onnxruntime without that attribute: its public call
            return self.session.run(self._output, {"x": x})[0]
        return inner.run(self._output, {"x": x}, None)[0]

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
        "versions": {"mlkit": _version("mlkit-course"), "jax2onnx": _version("jax2onnx")},
        **text_metadata(predictor),
    }


def _parse(data: bytes, path: Path) -> Any:
    """The file's bytes as an ``onnx.ModelProto`` (a protobuf parse: nothing runs)."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(f"{INSTALL} (onnx is missing).") from e
    try:
        return onnx.ModelProto.FromString(data)
    except Exception as e:  # protobuf's DecodeError, or a RuntimeError from its C++ parser
        raise ValueError(
            f"{path} is not a model ONNX Runtime can load (it is not an ONNX protobuf: {type(e).__name__}). "
            f"Copy it again or re-save it."
        ) from None


def _session(data: bytes, path: Path | None = None) -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"{INSTALL} (onnxruntime is missing).") from e
    try:
        return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise ValueError(
            f"{path} is not a model ONNX Runtime {onnxruntime.__version__} can load "
            f"({type(e).__name__}: {str(e)[:200]}). Copy it again or re-save it."
        ) from e


def _signature(body: bytes, key: bytes) -> bytes:
    """What, appended to ``body``, adds a metadata entry holding its HMAC: protobuf messages concatenate."""
    return _signature_entry(sign(body, key).decode().strip())


def _signature_entry(value: str) -> bytes:
    from onnx import ModelProto

    tail = ModelProto()
    entry = tail.metadata_props.add()
    entry.key, entry.value = SIGNATURE, value
    return tail.SerializeToString()


def _signed_part(model: Any, data: bytes) -> tuple[bytes, bytes | None]:
    """The bytes the file's signature covers and the signature, or ``(data, None)`` where there is none."""
    found = _entries(model, SIGNATURE)
    tail = _signature_entry(found[0]) if len(found) == 1 else None
    if tail is None or not data.endswith(tail):  # none, two, or one that is not the file's last bytes
        return data, None
    return data[: -len(tail)], f"{found[0]}\n".encode()


def _entries(model: Any, key: str) -> list[str]:
    """The values of the model's metadata entries named ``key`` (protobuf gives bytes for invalid UTF-8: as text)."""
    return [e.value if isinstance(e.value, str) else "" for e in model.metadata_props if e.key == key]


def _read_metadata(model: Any, path: Path) -> Metadata:
    """The mlkit description inside the model, checked as metadata.json is (:func:`mlkit.infer.metadata.parse`)."""
    raws = _entries(model, "mlkit")
    try:
        found = parse_json(raws[0].encode(), f"{path}'s mlkit metadata") if len(raws) == 1 else None
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != ONNX_FORMAT:
        raise ValueError(
            f'{path} is an ONNX model but not an mlkit predictor: it lacks the "mlkit" metadata '
            f"that mlkit.save_predictor(predictor, PATH, format='onnx') writes."
        )
    outputs = [output.type.tensor_type.shape.dim for output in model.graph.output]
    dims = outputs[0] if len(outputs) == 1 else []
    width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
    return parse(found, f"{path}'s mlkit metadata", outputs=width)


def _verify(data: bytes, metadata: Metadata, path: Path, timeout: float | None) -> None:
    """Run the model in a child process; its answers must match those recorded when it was saved."""
    rows = check_rows(metadata.features, metadata.json["preprocessor"], ONNX_CHECK_ROWS)
    described = {"output": metadata.json["output"], "width": metadata.outputs}
    got = run_in_child(data, described, rows, str(path), timeout, runtime="onnx")
    if "check" in metadata.json:  # saved by an mlkit that recorded answers
        expected = np.asarray(metadata.json["check"]["outputs"], np.float32)
        check_answers(got, expected, 1e-5 * max(1.0, float(np.abs(expected).max())), str(path), "the file")


def _check_graph(model: Any, metadata: Metadata, path: Path) -> None:
    """The model's declared input and output must be the ones its metadata describes: x float[b, n], one output."""
    from onnx import TensorProto

    def shown(values: Any) -> list:
        return [
            (v.name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim])
            for v in values
        ]

    takes, gives = list(model.graph.input), list(model.graph.output)
    dims = takes[0].type.tensor_type.shape.dim if len(takes) == 1 else []
    if not (
        len(takes) == len(gives) == 1
        and takes[0].name == "x"
        and gives[0].name == metadata.json["output"]
        and takes[0].type.tensor_type.elem_type == gives[0].type.tensor_type.elem_type == TensorProto.FLOAT
        and len(dims) == 2
        and dims[1].dim_value == metadata.features
    ):
        raise ValueError(
            f"{path}: its mlkit metadata (input x: float[b, {metadata.features}], output "
            f"{metadata.json['output']}: float[b, {metadata.outputs}]) does not match the model's inputs "
            f"{shown(takes)} and outputs {shown(gives)}. Re-save the artifact."
        )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
