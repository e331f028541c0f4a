"""A deployable predictor: the frozen function serialized by ``jax.export``, plus JSON metadata.

An artifact is a directory::

    model/                   the path given to ``save_predictor(predictor, path)``
      metadata.json          input and output spec, labels, task, pre-processing statistics,
                             versions, and the size and sha256 of the payload
      function.jaxexport     the whole frozen function (pre-processing, model, softmax, the
                             parameters as constants) in jax.export's own binary format

A directory rather than one file, so the description stays plain text that
``cat model/metadata.json`` shows, next to a payload that is exactly the bytes
``jax.export`` wrote. Loading needs jax and numpy only: no pickle, no eval, no
model class, no flax. The batch dimension is symbolic (``b``), so one artifact
serves every batch size.

Saving is atomic: the new artifact is written completely into a hidden sibling
directory and only then renamed to ``path``. An artifact already there stays
intact until the new one is complete; it is then moved aside, the new one takes
its name, and the old one is deleted.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlkit.data import Preprocessor
from mlkit.infer.dispatch import prefer_sync_dispatch
from mlkit.infer.onnx_format import load_onnx, save_onnx
from mlkit.infer.predictor import BUCKETS, Predictor

FORMAT = "mlkit.predictor"
FORMAT_VERSION = 1
METADATA = "metadata.json"
PAYLOAD = "function.jaxexport"
PLATFORMS = ("cpu", "cuda")  # exported for both, so an artifact saved on a laptop also runs on a GPU
REQUIRED = ("format_version", "task", "labels", "input", "output", "preprocessor", "versions", "payload")
RE_EXPORT = (
    "Re-export it with the versions installed here: `python -m mlkit train ... --out DIR`, "
    "or `mlkit.save_predictor(predictor, DIR)` from the trained model."
)


def save_predictor(predictor: Predictor, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write ``predictor`` at ``path``, atomically; returns the path.

    ``format="jax"`` (the default) writes the artifact directory described above;
    ``format="onnx"`` (the default for a path ending in ``.onnx``) one standard ONNX
    file that any ONNX runtime can run (see :mod:`mlkit.infer.onnx_format`).
    """
    path = Path(path)
    format = format or ("onnx" if path.suffix.lower() == ".onnx" else "jax")
    if format == "onnx":
        return save_onnx(predictor, path)
    if format != "jax":
        raise ValueError(f'format must be "jax" (a jax.export directory) or "onnx" (one .onnx file), got {format!r}.')
    _check_target(path)
    exported = _export(predictor)
    outputs = exported.out_avals[0].shape[1]
    if predictor.task == "classification" and len(predictor.labels) != outputs:
        raise ValueError(
            f"A classifier needs one label per output: expected {outputs} labels, "
            f"got {len(predictor.labels)}. Pass labels= to freeze or Predictor."
        )
    payload = exported.serialize()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": predictor.task,
        "labels": [_json_label(label) for label in predictor.labels],
        "input": {"shape": ["b", predictor.num_features], "dtype": "float32"},
        "output": {"shape": ["b", outputs], "dtype": str(exported.out_avals[0].dtype)},
        "buckets": list(predictor.buckets),
        "preprocessor": None if predictor.preprocessor is None else predictor.preprocessor.to_dict(),
        "param_bytes": predictor.nbytes,
        "platforms": list(exported.platforms),
        "versions": _versions(exported.calling_convention_version),
        "payload": {"file": PAYLOAD, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; an artifact is meant to be shared
        _write(staging / PAYLOAD, bytes(payload))
        _write(staging / METADATA, json.dumps(metadata, indent=2).encode())
        _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_predictor(path: str | os.PathLike) -> Predictor:
    """The :class:`Predictor` saved at ``path``: same labels, task, validation and batch buckets.

    A directory is read as a jax.export artifact, a ``.onnx`` file with ONNX Runtime.
    Raises FileNotFoundError for a missing path and ValueError, naming the file and
    the problem, for anything that is not an intact artifact this jax can run.
    Loading is where a serving process starts, so it first asks for synchronous CPU
    dispatch (see :mod:`mlkit.infer.dispatch`; it changes nothing once JAX has started).
    """
    path = Path(path)
    prefer_sync_dispatch()
    if path.suffix.lower() == ".onnx" and not path.is_dir():
        return load_onnx(path)
    metadata = read_metadata(path)
    _check_versions(metadata, path)
    payload = _read_payload(path, metadata)
    try:
        exported = jax.export.deserialize(bytearray(payload))
    except Exception as e:  # flatbuffers raises struct.error, IndexError, ... on bytes it cannot parse
        raise ValueError(
            f"{path / PAYLOAD} passed its checksum but jax {jax.__version__} cannot read it "
            f"({type(e).__name__}: {e}). {RE_EXPORT}"
        ) from e
    num_features = metadata["input"]["shape"][1]
    avals = exported.in_avals
    if len(avals) != 1 or avals[0].shape[1:] != (num_features,) or avals[0].dtype != jnp.float32:
        takes = ", ".join(aval.str_short() for aval in avals)
        raise ValueError(
            f"{path}: {METADATA} says the input is float32[b,{num_features}] but the function "
            f"takes ({takes}); the two files do not belong together. Re-save the artifact."
        )
    preprocessor = metadata["preprocessor"]
    return Predictor(
        exported.call,
        num_features,
        metadata["labels"],
        task=metadata["task"],
        buckets=metadata.get("buckets", BUCKETS),
        preprocessor=None if preprocessor is None else Preprocessor.from_dict(preprocessor),
    )


def read_metadata(path: str | os.PathLike) -> dict:
    """The checked contents of ``path/metadata.json`` (the payload is not read)."""
    path = Path(path)
    expected = (
        f"a directory holding {METADATA} and {PAYLOAD}, written by mlkit.save_predictor "
        f"or `python -m mlkit train --out`"
    )
    if not path.exists():
        aside = sorted(path.parent.glob(f".{path.name}.old-*"))
        hint = f" An interrupted save left the previous artifact at {aside[-1]}; rename it back." if aside else ""
        raise FileNotFoundError(f"No predictor artifact at {path}: expected {expected}.{hint}")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a predictor artifact: expected {expected}.")
    meta_path = path / METADATA
    if not meta_path.is_file():
        raise ValueError(f"{path} is not a predictor artifact: it has no {METADATA}. Expected {expected}.")
    try:
        metadata = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{meta_path} is not valid JSON ({e}): the artifact is damaged. Copy it again or re-save it."
        ) from e
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        got = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise ValueError(f'{meta_path} is not mlkit predictor metadata: expected "format": "{FORMAT}", got {got!r}.')
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        raise ValueError(
            f"{meta_path} lacks the keys {missing}: the artifact is incomplete or from another tool. Re-save it."
        )
    problem = _problem(metadata)
    if problem:
        raise ValueError(f"{meta_path} is malformed: {problem}. Re-save the artifact.")
    return metadata


def _problem(metadata: dict) -> str | None:
    """What is wrong with the fields of ``metadata``, or None."""
    shapes: list[Any] = [
        part.get("shape") if isinstance(part, dict) else None for part in (metadata["input"], metadata["output"])
    ]
    if not all(isinstance(s, list) and len(s) == 2 and isinstance(s[1], int) and s[1] > 0 for s in shapes):
        return f'"input" and "output" should each hold a "shape" ["b", size], got {shapes}'
    if metadata["task"] not in ("classification", "regression"):
        return f'"task" should be "classification" or "regression", got {metadata["task"]!r}'
    labels = metadata["labels"]
    if not (isinstance(labels, list) and all(isinstance(label, (str, int, float)) for label in labels)):
        return f'"labels" should be a list of numbers or strings, got {str(labels)[:80]}'
    if metadata["task"] == "classification" and len(labels) != shapes[1][1]:
        return f"{len(labels)} labels for {shapes[1][1]} outputs"
    pre, n = metadata["preprocessor"], shapes[0][1]
    if pre is not None and not (
        isinstance(pre, dict)
        and all(isinstance(pre.get(key), list) and len(pre[key]) == n for key in ("mean", "scale"))
    ):
        return f'"preprocessor" should be null or hold "mean" and "scale" lists of {n} numbers'
    buckets = metadata.get("buckets", [1])
    if not (isinstance(buckets, list) and buckets and all(isinstance(b, int) and b > 0 for b in buckets)):
        return f'"buckets" should be a list of positive batch sizes, got {buckets!r}'
    payload = metadata["payload"]
    if not (
        isinstance(payload, dict) and isinstance(payload.get("bytes"), int) and isinstance(payload.get("sha256"), str)
    ):
        return f'"payload" should hold "bytes" (an integer) and "sha256" (hex digits), got {payload!r}'
    if not isinstance(metadata["versions"], dict) or not isinstance(metadata["format_version"], int):
        return '"versions" should be an object and "format_version" an integer'
    return None


def _export(predictor: Predictor) -> jax.export.Exported:
    (batch,) = jax.export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((batch, predictor.num_features), jnp.float32)
    here = jax.export.default_export_platform()
    try:
        return jax.export.export(jax.jit(predictor.fn), platforms=tuple(dict.fromkeys((here, *PLATFORMS))))(spec)
    except Exception:  # some operation has no lowering for another platform: export for this one only
        return jax.export.export(jax.jit(predictor.fn))(spec)


def _versions(calling_convention: int) -> dict:
    return {
        "mlkit": importlib.metadata.version("mlkit"),
        "jax": jax.__version__,
        "serialization": _serialization_version(),
        "calling_convention": calling_convention,
    }


def _serialization_version() -> int | None:
    """jax.export's flatbuffer schema version. jax keeps it private, so read it defensively."""
    try:
        from jax._src.export import serialization

        return int(serialization._SERIALIZATION_VERSION)
    except (ImportError, AttributeError):
        return None


def _check_versions(metadata: dict, path: Path) -> None:
    """Refuse, saying how to re-export, what this mlkit, jax or machine cannot run."""
    versions = metadata["versions"]
    if metadata["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses artifact format {metadata['format_version']} (mlkit {versions.get('mlkit')}); "
            f"this mlkit {importlib.metadata.version('mlkit')} reads format {FORMAT_VERSION}. "
            f"Upgrade mlkit to read it. {RE_EXPORT}"
        )
    serialization, convention = versions.get("serialization"), versions.get("calling_convention")
    readable, lowest, highest = (
        _serialization_version(),
        jax.export.minimum_supported_calling_convention_version,
        jax.export.maximum_supported_calling_convention_version,
    )
    too_new = isinstance(serialization, int) and readable is not None and serialization > readable
    if too_new or not (isinstance(convention, int) and lowest <= convention <= highest):
        raise ValueError(
            f"{path} was exported by jax {versions.get('jax')} (jax.export serialization version "
            f"{serialization}, calling convention {convention}); the jax {jax.__version__} installed "
            f"here reads serialization versions up to {readable} and calling conventions "
            f"{lowest} to {highest}. {RE_EXPORT}"
        )
    platform = jax.export.default_export_platform()
    if platform not in metadata.get("platforms", [platform]):
        raise ValueError(
            f"{path} was exported for {metadata['platforms']} but this machine runs {platform!r}. {RE_EXPORT}"
        )


def _read_payload(path: Path, metadata: dict) -> bytes:
    payload_path = path / PAYLOAD
    if not payload_path.is_file():
        raise ValueError(f"{path} is incomplete: {PAYLOAD} is missing. Copy the whole directory again or re-save it.")
    payload = payload_path.read_bytes()
    expected = metadata["payload"]
    if len(payload) != expected["bytes"]:
        raise ValueError(
            f"{payload_path} is {len(payload)} bytes, expected {expected['bytes']}: the artifact is "
            f"truncated or altered (an interrupted copy?). Copy it again or re-save it."
        )
    digest = hashlib.sha256(payload).hexdigest()
    if digest != expected["sha256"]:
        raise ValueError(
            f"{payload_path} has been altered: sha256 {digest}, expected {expected['sha256']} "
            f"(recorded in {METADATA}). Copy the artifact again or re-save it."
        )
    return payload


def _json_label(label):
    """A label as a JSON scalar of the same kind: ints stay ints, strings stay strings."""
    label = label.item() if isinstance(label, np.generic) else label
    if not isinstance(label, (str, int, float, bool)):
        raise ValueError(f"Labels must be numbers or strings to be saved; got {label!r} ({type(label).__name__}).")
    return label


def _check_target(path: Path) -> None:
    """Refuse to replace anything that is not an empty directory or an earlier artifact."""
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    try:
        ours = json.loads((path / METADATA).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise ValueError(
            f"Refusing to save over {path}: it exists and is not a predictor artifact. "
            f"Expected a new path, an empty directory or an earlier artifact; choose another path."
        )


def _write(file: Path, data: bytes) -> None:
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _swap_in(staging: Path, path: Path) -> None:
    """Give the complete ``staging`` directory the name ``path``; an old artifact there is removed after."""
    if not path.exists():
        os.replace(staging, path)
        return
    aside = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, aside)  # the complete old artifact steps aside ...
    try:
        os.replace(staging, path)  # ... and the complete new one takes its name
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)
