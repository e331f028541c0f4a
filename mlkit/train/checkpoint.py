"""Checkpoints: a model's numbers and its history on disk, so a crashed kernel loses at most one epoch.

A checkpoint is one ``.npz`` file: every array of the model's state under its
path (``layers/0/kernel``...), the history as JSON text, and a manifest (JSON:
each array's shape, dtype and sha256). No pickle: it loads with
``allow_pickle=False``. Writing is atomic (:func:`mlkit.storage.write_atomically`),
so a crash mid-write leaves the previous checkpoint whole.

Loading checks everything before the model changes: the file's size (from
``stat``, before reading; at most ``MAX_BYTES`` unless ``max_bytes=`` says more)
and the unpacked size of every member; the manifest against the arrays; the
history's fields by type and range; and that every weight is finite, since a
NaN saved by a diverging run would otherwise load silently (``allow_nonfinite=True``
loads it anyway, to look at). Like any unsigned file, a checkpoint catches
accidents, not someone who rewrites the arrays and the manifest together.

    mlkit.fit(model, data, config, callbacks=[mlkit.Checkpoint("run.npz", model)])
    history = mlkit.load_checkpoint("run.npz", model)   # same architecture, weights restored
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from mlkit.data.files import check_held, npy_header
from mlkit.storage import parse_json, read_file, write_atomically
from mlkit.train.loop import History

MAX_BYTES = 1 << 30  # the largest checkpoint load_checkpoint reads (and unpacks); max_bytes= raises it
MAX_EPOCHS = 1_000_000
STATUSES = ("running", "completed", "early_stopped", "stopped", "diverged", "learned_nothing", "interrupted")
_HISTORY = "__history__"
_MANIFEST = "__manifest__"
_FORMAT = "mlkit.checkpoint"


def _flat_state(model: nnx.Module) -> tuple[dict[str, jax.Array], object]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(model))
    names = [
        "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path) for path, _ in leaves
    ]
    return dict(zip(names, (leaf for _, leaf in leaves), strict=True)), treedef


def save_checkpoint(path: str | os.PathLike, model: nnx.Module, history: History | None = None) -> Path:
    """Write the model's state (and the history) to ``path`` atomically."""
    arrays = {
        name: np.asarray(jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
        for name, v in _flat_state(model)[0].items()
    }
    manifest = {"format": _FORMAT, "arrays": {name: _describe(a) for name, a in arrays.items()}}
    arrays[_HISTORY] = np.array(json.dumps(dataclasses.asdict(history or History())))
    arrays[_MANIFEST] = np.array(json.dumps(manifest))
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return write_atomically(Path(path), buffer.getvalue())


def load_checkpoint(
    path: str | os.PathLike, model: nnx.Module, *, allow_nonfinite: bool = False, max_bytes: int = MAX_BYTES
) -> History:
    """Put the saved numbers into ``model`` (which must have the same architecture); return the history.

    The model is changed only if every array is found intact, with the right shape and dtype,
    and finite (unless ``allow_nonfinite``).
    """
    path = Path(path)
    saved, history = _read(path, max_bytes)
    current, treedef = _flat_state(model)
    if saved.keys() != current.keys():
        missing, extra = sorted(current.keys() - saved.keys()), sorted(saved.keys() - current.keys())
        raise ValueError(
            f"{path} was saved from a different architecture: missing {missing[:5]}, "
            f"unexpected {extra[:5]}. Build the model exactly as it was when saved."
        )
    nonfinite = [name for name, a in saved.items() if a.dtype.kind in "fc" and not np.isfinite(a).all()]
    if nonfinite and not allow_nonfinite:
        raise ValueError(
            f"{path}: {nonfinite[:5]} hold NaN or infinity (a run that diverged?), so the model was left as it "
            f"was. Load an earlier checkpoint, or pass allow_nonfinite=True to load it anyway and look."
        )
    restored = []
    for name, now in current.items():
        key_array = jax.dtypes.issubdtype(now.dtype, jax.dtypes.prng_key)
        expected = jax.random.key_data(now) if key_array else now
        if saved[name].shape != expected.shape or saved[name].dtype != expected.dtype:
            raise ValueError(
                f"{path}: {name} has shape {saved[name].shape} and dtype {saved[name].dtype}, the model "
                f"expects {expected.shape} {expected.dtype}. Build the model as it was when saved."
            )
        value = jax.numpy.asarray(saved[name])
        restored.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(now)) if key_array else value)
    nnx.update(model, jax.tree_util.tree_unflatten(treedef, restored))
    return history


def _read(path: Path, max_bytes: int) -> tuple[dict[str, np.ndarray], History]:
    """The arrays and the history in the checkpoint at ``path``, checked against its manifest."""
    data = read_file(path.resolve(), cap=max_bytes, what=str(path), limit="max_bytes")  # FileNotFoundError as is
    readable = "Checkpoints are written by mlkit.Checkpoint / mlkit.save_checkpoint; copy it again or save it again."
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
            if unpacked > max_bytes:
                raise ValueError(f"it unpacks to {unpacked:,} bytes, more than the {max_bytes:,} allowed (max_bytes)")
            for name in archive.namelist():  # the shape each header declares, before numpy allocates it
                check_held(name, *npy_header(archive, name))
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            saved = {name: f[name] for name in f.files}
        fields = parse_json(str(saved.pop(_HISTORY)).encode(), "its history", nonfinite=True)
        manifest = parse_json(str(saved.pop(_MANIFEST)).encode(), "its manifest") if _MANIFEST in saved else None
    except (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{path} is not a readable mlkit checkpoint ({e}). {readable}") from e
    problem = _history_problem(fields)
    if problem is None and manifest is not None:  # checkpoints from before the manifest have none
        problem = _manifest_problem(manifest, saved)
    if problem:
        raise ValueError(f"{path} is not an intact mlkit checkpoint: {problem}. {readable}")
    return saved, History(**fields)


def _describe(a: np.ndarray) -> dict:
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _manifest_problem(manifest: Any, saved: dict[str, np.ndarray]) -> str | None:
    arrays = manifest.get("arrays") if isinstance(manifest, dict) else None
    if not (isinstance(manifest, dict) and manifest.get("format") == _FORMAT and isinstance(arrays, dict)):
        return f'its manifest should be {{"format": "{_FORMAT}", "arrays": {{...}}}}'
    if arrays.keys() != saved.keys():
        return f"its manifest lists {sorted(arrays)[:5]}..., the file holds {sorted(saved)[:5]}..."
    changed = [name for name, a in saved.items() if arrays[name] != _describe(a)]
    return f"{changed[:5]} differ from their shape, dtype or sha256 in its manifest (altered?)" if changed else None


def _history_problem(fields: Any) -> str | None:
    """What is wrong with the saved history's fields, by type and range, or None."""
    known = {f.name for f in dataclasses.fields(History)}
    if not isinstance(fields, dict) or not fields.keys() <= known:
        extra = sorted(fields.keys() - known) if isinstance(fields, dict) else type(fields).__name__
        return f"its history should be an object with some of the fields {sorted(known)}, got {extra}"
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time", "train_time"):
        values = fields.get(name, [])
        if not (
            isinstance(values, list) and len(values) <= MAX_EPOCHS and all(type(x) in (int, float) for x in values)
        ):
            return f"the history's {name} should be a list of numbers, got {str(values)[:60]}"
    compile_time, status = fields.get("compile_time", 0.0), fields.get("status", "running")
    if not (type(compile_time) in (int, float) and math.isfinite(compile_time) and compile_time >= 0):
        return f"the history's compile_time should be seconds (a number >= 0), got {compile_time!r}"
    if status not in STATUSES:
        return f"the history's status should be one of {list(STATUSES)}, got {str(status)[:60]!r}"
    if not isinstance(fields.get("message", ""), str):
        return f"the history's message should be text, got {str(fields['message'])[:60]!r}"
    best, epochs = fields.get("best_epoch"), len(fields.get("train_loss", []))
    if best is not None and not (type(best) is int and 1 <= best <= epochs):
        return f"the history's best_epoch should be null or an epoch from 1 to {epochs}, got {best!r}"
    return None


class Checkpoint:
    """A ``fit`` callback that saves the model and history after every epoch (or every ``every`` epochs)."""

    def __init__(self, path: str | os.PathLike, model: nnx.Module, every: int = 1):
        self.path, self.model, self.every = Path(path), model, every

    def __call__(self, history: History) -> None:
        if history.epochs % self.every == 0:
            save_checkpoint(self.path, self.model, history)
