"""The data sets that ship inside the package, checked against their sha256 before use.

The files live in ``mlkit/data/sets/`` so that a built wheel carries them (the
card with their source and licence is ``datasets/README.md`` at the top of the
repository, whose ``datasets/*.npz`` are links to these files).
``MLKIT_DATASETS=DIR`` reads them from another directory instead.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SETS_DIR = Path(__file__).resolve().parent / "sets"

SHIPPED = {
    "digits": ("digits.npz", "6f801551877abf69fbf3711373bb642a18dc933430a3385cd6febc235225ea6f", (8, 8)),
    "mnist5k": ("mnist5k.npz", "f814240cf7e0d3cbaacc1a898905819a40ab46fb317a600d2a4b91a5c184c810", (28, 28)),
    "reviews": ("reviews.npz", "e4a7fe88f3b308573df79a727dd1d1ad5205e7ca65c6a2e453b0e678f60310d3", None),
}

RESTORE = (
    "Reinstall the kit from its folder (`pip install --force-reinstall -e .`) or, in a checkout, "
    "`git checkout -- mlkit/data/sets/`."
)


def sets_dir() -> Path:
    """Where the shipped files are read from: ``$MLKIT_DATASETS`` when set, else the package's own copy."""
    return Path(os.environ.get("MLKIT_DATASETS", SETS_DIR))


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_shipped(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of a shipped set, after checking the file's sha256."""
    filename, expected, _ = SHIPPED[name]
    path = sets_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"The {name!r} data file is missing: expected {path}. It ships with mlkit. {RESTORE}")
    got = sha256(path)
    if got != expected:
        raise ValueError(
            f"The {name!r} data file {path} has been altered: sha256 {got}, expected {expected}. {RESTORE}"
        )
    with np.load(path, allow_pickle=False) as f:
        return f["x"], f["y"]
