"""A learner's own data file: a CSV table (header optional) or an NPZ archive of arrays x and y.

Every way a file can be malformed gets an error that names the file, the line
and what was expected, so a learner can fix the file rather than guess.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np


def read_table(path: Path, label: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from a learner's CSV (header optional) or NPZ (arrays x, y) file."""
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path} is empty; expected rows of comma-separated numbers with a label column.")
    header = None if all(_is_number(cell) for cell in rows[0]) else [c.strip() for c in rows.pop(0)]
    width = len(header) if header else len(rows[0])
    if width < 2 or not rows:
        raise ValueError(f"{path} needs at least one feature column, a label column and one data row.")
    column = _label_column(label, header, width, path)
    features, targets = [], []
    for line, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise ValueError(f"{path}, line {line}: {len(row)} fields, expected {width} like the first row.")
        targets.append(row[column].strip())
        cells = row[:column] + row[column + 1 :]
        bad = [c for c in cells if not _is_number(c)]
        if bad:
            raise ValueError(
                f"{path}, line {line}: {bad[0]!r} is not a number; every feature must be numeric "
                f"(only the label column may hold text)."
            )
        features.append([float(c) for c in cells])
    x = np.asarray(features, np.float32)
    y = np.asarray([float(t) for t in targets]) if all(_is_number(t) for t in targets) else np.asarray(targets)
    return x, y


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as f:  # closed even on a bad file
            arrays = {key: f[key] for key in f.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable .npz of numeric arrays 'x' and 'y' ({e}).") from e
    if not {"x", "y"} <= arrays.keys():
        raise ValueError(f"{path} holds arrays {sorted(arrays)}; expected 'x' (features) and 'y' (labels).")
    return arrays["x"], arrays["y"]


def _label_column(label, header, width, path) -> int:
    if label is None:
        return width - 1
    if isinstance(label, int):
        if not -width <= label < width:
            raise ValueError(f"label column {label} is out of range for {path}, which has {width} columns.")
        return label % width
    if header is None or label not in header:
        raise ValueError(f"No column named {label!r} in {path}; its header is {header or '(none)'}.")
    return header.index(label)


def _is_number(cell: str) -> bool:
    try:
        return np.isfinite(float(cell))
    except ValueError:
        return False
