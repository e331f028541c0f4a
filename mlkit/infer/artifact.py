"""A deployable predictor: the frozen function serialized by ``jax.export``, plus JSON metadata.

An artifact is a directory::

    model/                   the path given to ``save_predictor(predictor, path)``
      manifest.json          the size and sha256 of metadata.json and function.jaxexport
      manifest.sig           an HMAC-SHA256 of manifest.json (see mlkit.infer.verify)
      metadata.json          task, labels, input and output spec, batch buckets, pre-processing
                             statistics, platforms, versions, and the answers to a few check rows
      function.jaxexport     the whole frozen function (pre-processing, model, softmax, the
                             parameters as constants) in jax.export's own binary format

A directory rather than one file, so the description stays plain text that
``cat model/metadata.json`` shows, next to a payload that is exactly the bytes
``jax.export`` wrote. Running the payload needs jax and numpy only: no pickle, no
eval, no model class, no flax. The batch dimension is symbolic (``b``), so one
artifact serves every batch size.

Loading reads the files through the directory it opened, each checked with
``stat`` before a byte is read: a plain file (a symbolic link is never followed),
no larger than its cap (``MAX_*`` below) and exactly the size the manifest
records. With a key, the signature is checked first, before any JSON is parsed.
Then the manifest's sha256 of each file, strict JSON (bounded depth, no duplicate
keys, no NaN), every metadata field by type and range (:mod:`mlkit.infer.metadata`,
which checks an ``.onnx`` file's metadata too), the versions and the platform. Only
then does the program run: in a child process first unless the artifact is signed
(:mod:`mlkit.infer.verify`), and its declared shapes, platforms and devices must
match the metadata.

Saving writes the new artifact completely into a hidden sibling directory, which
then trades places with the old one in one atomic exchange
(:func:`mlkit.storage.write_directory`) before the old one is deleted, so the path is
never missing or half-written. A reader holds the directory it opened: it reads
all of the old artifact or all of the new one, and starts again if a save removed
the old one under it. A save killed half-way leaves a hidden directory that the
next save to the same path removes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mlkit.infer.dispatch import prefer_sync_dispatch
from mlkit.infer.metadata import (
    FORMAT,
    FORMAT_VERSION,
    PAYLOAD,
    RE_EXPORT,
    Metadata,
    MetadataError,
    is_entry,
    parse,
)
from mlkit.infer.metadata import check_rows as rows_to_check
from mlkit.infer.onnx_format import load_onnx, save_onnx
from mlkit.infer.predictor import Predictor
from mlkit.infer.text import text_metadata, with_text
from mlkit.infer.verify import as_key, check_answers, check_program, machine_key, run_in_child, sign, signed_with
from mlkit.storage import parse_json, read_file, write_directory

MANIFEST_FORMAT = "mlkit.manifest"
MANIFEST, SIGNATURE, METADATA = "manifest.json", "manifest.sig", "metadata.json"  # and PAYLOAD
PLATFORMS = ("cpu", "cuda")  # exported for both, so an artifact saved on a laptop also runs on a GPU
MAX_BYTES = 1 << 30  # the largest payload read; load_predictor(..., max_bytes=) raises it
MAX_METADATA_BYTES = 16 << 20
MAX_MANIFEST_BYTES = 64 << 10
READ_TRIES = 5  # a reader starts again this often if saves keep replacing the artifact under it


def save_predictor(
    predictor: Predictor, path: str | os.PathLike, format: str | None = None, *, key: bytes | str | None = None
) -> Path:
    """Write ``predictor`` at ``path``, atomically; returns the path.

    ``format="jax"`` (the default) writes the artifact directory described above, signed with
    ``key`` (at least 16 bytes), or with this machine's own key when none is given;
    ``format="onnx"`` (the default for a path ending in ``.onnx``) one standard ONNX
    file that any ONNX runtime can run, signed the same way (see :mod:`mlkit.infer.onnx_format`).
    """
    path = Path(path)
    format = format or ("onnx" if path.suffix.lower() == ".onnx" else "jax")
    if format == "onnx":
        return save_onnx(predictor, path, key=None if key is None else as_key(key))
    if format != "jax":
        raise ValueError(f'format must be "jax" (a jax.export directory) or "onnx" (one .onnx file), got {format!r}.')
    signing_key = as_key(key) if key is not None else machine_key(create=True)
    _check_target(path)
    exported = _export(predictor)
    gives = [aval.shape for aval in exported.out_avals]
    if len(gives) != 1 or len(gives[0]) != 2 or not isinstance(gives[0][1], int):
        raise ValueError(
            f"Cannot save this predictor: its function gives arrays of shapes {gives}, not one (n, outputs) "
            f"array of probabilities or values."
        )
    outputs = gives[0][1]
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
        **text_metadata(predictor),
    }
    answers = np.asarray(exported.call(check_rows(metadata)))
    if not np.isfinite(answers).all():
        raise ValueError("Cannot save this predictor: its answers to rows near the training mean hold NaN or infinity.")
    metadata["check"] = {"platform": jax.export.default_export_platform(), "outputs": answers.tolist()}
    try:
        parse(metadata, "the predictor's metadata")
        problem = check_program(exported, metadata)
    except MetadataError as e:
        problem = e.problem
    if problem:
        raise ValueError(f"Cannot save this predictor: {problem}. Fix it in freeze or Predictor.")
    payload = bytes(exported.serialize())
    described = json.dumps(metadata, indent=2).encode()
    manifest = json.dumps({"format": MANIFEST_FORMAT, "files": {METADATA: _entry(described), PAYLOAD: _entry(payload)}})
    files = {PAYLOAD: payload, METADATA: described, MANIFEST: manifest.encode()}
    if signing_key is not None:
        files[SIGNATURE] = sign(files[MANIFEST], signing_key)
    write_directory(path, files)
    return path


def load_predictor(
    path: str | os.PathLike,
    *,
    key: bytes | str | None = None,
    verify: bool | None = None,
    verify_timeout: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> Predictor:
    """The :class:`Predictor` saved at ``path``: same labels, task, validation and batch buckets.

    A directory is read as a jax.export artifact, a ``.onnx`` file with ONNX Runtime, by the same
    rules. With ``key``, an artifact not signed with it is refused before anything is run.
    ``verify`` runs the program in a child process first (see :mod:`mlkit.infer.verify`):
    by default only when the artifact is not signed (with ``key`` or this machine's key);
    ``True`` always, ``False`` never (only for artifacts you made yourself); the check may take
    ``verify_timeout`` seconds (default ``mlkit.infer.verify.TIMEOUT_S``). ``max_bytes`` caps the
    payload. Raises FileNotFoundError for a missing path and ValueError, naming the file and
    the problem, for anything that is not an intact artifact this jax can run.
    Loading is where a serving process starts, so it first asks for synchronous CPU
    dispatch (see :mod:`mlkit.infer.dispatch`; it changes nothing once JAX has started).
    """
    path = Path(path)
    prefer_sync_dispatch()
    if path.suffix.lower() == ".onnx" and not path.is_dir():
        key = None if key is None else as_key(key)
        return load_onnx(path, key=key, verify=verify, verify_timeout=verify_timeout, max_bytes=max_bytes)
    found = _read(path, key, max_bytes)
    if verify or (verify is None and not found.signed):
        _verify(found, verify_timeout)
    try:
        exported = jax.export.deserialize(bytearray(found.payload))
    except Exception as e:  # flatbuffers raises struct.error, IndexError, ... on bytes it cannot parse
        raise ValueError(
            f"{path / PAYLOAD} passed its checksum but jax {jax.__version__} cannot read it "
            f"({type(e).__name__}: {e}). {RE_EXPORT}"
        ) from e
    m = found.metadata
    problem = check_program(exported, m.json)
    if problem:
        raise ValueError(f"{path}: {problem}; {METADATA} and {PAYLOAD} do not belong together. Re-save the artifact.")
    predictor = Predictor(
        exported.call, m.features, m.labels, task=m.task, buckets=m.buckets, preprocessor=m.preprocessor
    )
    return with_text(predictor, m.json)


def verify_artifact(
    path: str | os.PathLike, *, key: bytes | str | None = None, timeout: float | None = None, max_bytes: int = MAX_BYTES
) -> None:
    """Check the artifact at ``path`` as ``load_predictor`` does, and run its program in a child process.

    The child deserializes the program, runs it on the artifact's check rows and batch sizes up to
    64 rows, and its answers must match those recorded at save time. A crash, an abort or a
    time-out there becomes a ValueError naming the artifact; this process never runs the program.
    """
    _verify(_read(Path(path), key, max_bytes), timeout)


def read_metadata(path: str | os.PathLike, *, key: bytes | str | None = None) -> dict:
    """The checked contents of ``path/metadata.json`` (the payload is not read)."""
    return _read(Path(path), key, None).metadata.json


def check_rows(metadata: dict) -> np.ndarray:
    """The rows whose answers the artifact with ``metadata`` records (:func:`mlkit.infer.metadata.check_rows`)."""
    return rows_to_check(metadata["input"]["shape"][1], metadata["preprocessor"])


@dataclasses.dataclass(frozen=True)
class _Found:
    path: Path
    metadata: Metadata
    payload: bytes
    signed: bool  # with the caller's key or this machine's


class _Replaced(Exception):
    """A save replaced the artifact while it was being read."""


def _read(path: Path, key: bytes | str | None, max_bytes: int | None) -> _Found:
    """Everything one version of the artifact holds, checked (``max_bytes=None``: all but the payload)."""
    key = None if key is None else as_key(key)
    for _ in range(READ_TRIES):
        try:
            return _read_once(path, key, max_bytes)
        except _Replaced:  # noqa: PERF203 (a retry, not a hot loop)
            continue
    raise ValueError(f"{path} was saved over {READ_TRIES} times while it was being read. Load it once saving stops.")


def _read_once(path: Path, key: bytes | None, max_bytes: int | None) -> _Found:
    expected = (
        f"a directory holding {MANIFEST}, {METADATA} and {PAYLOAD}, written by mlkit.save_predictor "
        f"or `python -m mlkit train --out`"
    )
    try:
        folder = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"No predictor artifact at {path}: expected {expected}.") from None
    except NotADirectoryError:
        raise ValueError(f"{path} is a file, not a predictor artifact: expected {expected}.") from None

    def member(name: str, cap: int, limit: str, size: int | None = None, recorded: str = MANIFEST) -> bytes | None:
        try:
            what = str(path / name)
            return read_file(name, cap=cap, what=what, limit=limit, size=size, recorded=recorded, dir_fd=folder)
        except FileNotFoundError:
            if _replaced(path, folder):
                raise _Replaced from None
            return None

    try:
        manifest = member(MANIFEST, MAX_MANIFEST_BYTES, "MAX_MANIFEST_BYTES")
        signature = member(SIGNATURE, 1024, "1 KiB")
        legacy = None if manifest is not None else member(METADATA, MAX_METADATA_BYTES, "MAX_METADATA_BYTES")
        if manifest is None and legacy is None:
            raise ValueError(f"{path} is not a predictor artifact: it has no {METADATA}. Expected {expected}.")
        if key is not None and not signed_with(manifest or b"", signature, key):
            state = (
                "has a signature that does not match this key: it was altered, or signed with another key"
                if signature
                else "is not signed: it was saved without a key (or by an older mlkit)"
            )
            raise ValueError(
                f"{path} {state}, so nothing in it was read. Ask for it signed with save_predictor(..., key=KEY)."
            )
        if manifest is None:
            read = lambda size: member(PAYLOAD, max_bytes or 0, "max_bytes", size, METADATA)
            return _read_version_1(path, legacy or b"", read if max_bytes is not None else None)
        files = _files(parse_json(manifest, str(path / MANIFEST)), path)
        raw = member(METADATA, MAX_METADATA_BYTES, "MAX_METADATA_BYTES", files[METADATA]["bytes"])
        metadata = _parse_metadata(
            _check_digest(raw, files[METADATA]["sha256"], path / METADATA, MANIFEST), path / METADATA
        )
        if metadata.json["format_version"] < 2:
            raise ValueError(f"{path / METADATA} says format 1, which has no {MANIFEST}. Re-save the artifact.")
        payload = b""
        if max_bytes is not None:
            data = member(PAYLOAD, max_bytes, "max_bytes", files[PAYLOAD]["bytes"])
            payload = _check_digest(data, files[PAYLOAD]["sha256"], path / PAYLOAD, MANIFEST)
        signed = key is not None or (signature is not None and signed_with(manifest, signature, machine_key()))
        return _Found(path, metadata, payload, signed)
    finally:
        os.close(folder)


def _read_version_1(path: Path, raw: bytes, read_payload: Callable[[int], bytes | None] | None) -> _Found:
    """An artifact saved by mlkit 0.1: no manifest, the payload's size and sha256 inside metadata.json."""
    metadata = _parse_metadata(raw, path / METADATA)
    if metadata.json["format_version"] != 1:
        raise ValueError(f"{path} is incomplete: it has no {MANIFEST}. Copy the whole directory again or re-save it.")
    payload = b""
    if read_payload is not None:
        recorded = metadata.json["payload"]
        payload = _check_digest(read_payload(recorded["bytes"]), recorded["sha256"], path / PAYLOAD, METADATA)
    return _Found(path, metadata, payload, signed=False)


def _replaced(path: Path, folder: int) -> bool:
    try:
        now, held = os.stat(path), os.fstat(folder)
    except FileNotFoundError:
        return True
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def _files(manifest: Any, path: Path) -> dict:
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not (
        isinstance(manifest, dict)
        and manifest.keys() == {"format", "files"}
        and manifest["format"] == MANIFEST_FORMAT
        and isinstance(files, dict)
        and files.keys() == {METADATA, PAYLOAD}
        and all(is_entry(entry) for entry in files.values())
    ):
        raise ValueError(
            f'{path / MANIFEST} is not an mlkit manifest: expected {{"format": "{MANIFEST_FORMAT}", "files": ...}} '
            f'giving the "bytes" and "sha256" of exactly {METADATA} and {PAYLOAD}. Re-save the artifact.'
        )
    return files


def _check_digest(data: bytes | None, expected: str, file: Path, recorded: str) -> bytes:
    """``data``, if it is there and its sha256 is the one ``recorded``."""
    if data is None:
        raise ValueError(
            f"{file.parent} is incomplete: {file.name} is missing. Copy the whole directory again or re-save it."
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ValueError(
            f"{file} has been altered: sha256 {digest}, expected {expected} "
            f"(recorded in {recorded}). Copy the artifact again or re-save it."
        )
    return data


def _parse_metadata(raw: bytes, where: Path) -> Metadata:
    """metadata.json's bytes as strict JSON, checked field by field (:mod:`mlkit.infer.metadata`), for this jax."""
    metadata = parse(parse_json(raw, str(where)), str(where))
    _check_versions(metadata.json, where.parent)
    return metadata


def _entry(data: bytes) -> dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _verify(found: _Found, timeout: float | None) -> None:
    """Run the program in a child process; its answers must match those recorded when it was saved."""
    metadata = found.metadata.json
    got = run_in_child(found.payload, metadata, check_rows(metadata), str(found.path), timeout)
    check = metadata.get("check")
    if check is None:  # format 1 recorded no answers: that the program ran is all there is to check
        return
    expected = np.asarray(check["outputs"], np.float32)
    same_platform = check["platform"] == jax.export.default_export_platform()
    allowed = (1e-5 if same_platform else 1e-2) * max(1.0, float(np.abs(expected).max()))
    check_answers(got, expected, allowed, str(found.path), f"{PAYLOAD} or {METADATA}")


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
        "mlkit": importlib.metadata.version("mlkit-course"),
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
    """Refuse, saying how to re-export, what this jax or machine cannot run."""
    versions = metadata["versions"]
    serialization, convention = versions["serialization"], versions["calling_convention"]
    readable, lowest, highest = (
        _serialization_version(),
        jax.export.minimum_supported_calling_convention_version,
        jax.export.maximum_supported_calling_convention_version,
    )
    too_new = serialization is not None and readable is not None and serialization > readable
    if too_new or not lowest <= convention <= highest:
        raise ValueError(
            f"{path} was exported by jax {versions['jax']} (jax.export serialization version "
            f"{serialization}, calling convention {convention}); the jax {jax.__version__} installed "
            f"here reads serialization versions up to {readable} and calling conventions "
            f"{lowest} to {highest}. {RE_EXPORT}"
        )
    platform = jax.export.default_export_platform()
    if platform not in metadata["platforms"]:
        raise ValueError(
            f"{path} was exported for {metadata['platforms']} but this machine runs {platform!r}. {RE_EXPORT}"
        )


def _json_label(label):
    """A label as a JSON scalar of the same kind: ints stay ints, strings stay strings."""
    label = label.item() if isinstance(label, np.generic) else label
    if not isinstance(label, (str, int, float, bool)):
        raise ValueError(f"Labels must be numbers or strings to be saved; got {label!r} ({type(label).__name__}).")
    return label


def _check_target(path: Path) -> None:
    """Refuse to replace anything that is not an empty directory or an earlier artifact."""
    if path.is_symlink():
        raise ValueError(
            f"Refusing to save over {path}: it is a symbolic link. Save to the directory it points to "
            f"({path.resolve()}) or choose another path."
        )
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    try:
        ours = parse_json(read_file(path / METADATA, cap=MAX_METADATA_BYTES, what=METADATA), METADATA)["format"]
    except (OSError, ValueError, TypeError, KeyError):
        ours = None
    if ours != FORMAT:
        raise ValueError(
            f"Refusing to save over {path}: it exists and is not a predictor artifact. "
            f"Expected a new path, an empty directory or an earlier artifact; choose another path."
        )
