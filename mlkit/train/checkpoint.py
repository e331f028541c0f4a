"""Checkpoints: a model's numbers and its history on disk, so a crashed kernel loses at most one epoch.

A checkpoint is one ``.npz`` file: every array of the model's state under its
path (``layers/0/kernel``...), plus the history as JSON text. No pickle: it
loads with ``allow_pickle=False``. Writing goes to a temporary file that is
renamed into place, so a crash mid-write leaves the previous checkpoint whole.

    mlkit.fit(model, data, config, callbacks=[mlkit.Checkpoint("run.npz", model)])
    history = mlkit.load_checkpoint("run.npz", model)   # same architecture, weights restored
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from mlkit.train.loop import History

_HISTORY = "__history__"


def _flat_state(model: nnx.Module) -> tuple[dict[str, jax.Array], object]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.state(model))
    names = [
        "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path) for path, _ in leaves
    ]
    return dict(zip(names, (leaf for _, leaf in leaves), strict=True)), treedef


def save_checkpoint(path: str | os.PathLike, model: nnx.Module, history: History | None = None) -> Path:
    """Write the model's state (and the history) to ``path`` atomically."""
    path = Path(path)
    arrays = {
        name: np.asarray(jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
        for name, v in _flat_state(model)[0].items()
    }
    arrays[_HISTORY] = np.array(json.dumps(dataclasses.asdict(history or History())))
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent or ".")
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, model: nnx.Module) -> History:
    """Put the saved numbers into ``model`` (which must have the same architecture); return the history.

    The model is changed only if every array is found with the right shape and dtype.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as f:  # closed even on a bad file
            saved = {name: f[name] for name in f.files}
        history = History(**json.loads(str(saved.pop(_HISTORY))))
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{path} is not a readable mlkit checkpoint ({e}). Checkpoints are written by "
            f"mlkit.Checkpoint / mlkit.save_checkpoint."
        ) from e
    current, treedef = _flat_state(model)
    if saved.keys() != current.keys():
        missing, extra = sorted(current.keys() - saved.keys()), sorted(saved.keys() - current.keys())
        raise ValueError(
            f"{path} was saved from a different architecture: missing {missing[:5]}, "
            f"unexpected {extra[:5]}. Build the model exactly as it was when saved."
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


class Checkpoint:
    """A ``fit`` callback that saves the model and history after every epoch (or every ``every`` epochs)."""

    def __init__(self, path: str | os.PathLike, model: nnx.Module, every: int = 1):
        self.path, self.model, self.every = Path(path), model, every

    def __call__(self, history: History) -> None:
        if history.epochs % self.every == 0:
            save_checkpoint(self.path, self.model, history)
