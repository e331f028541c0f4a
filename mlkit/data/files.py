"""A learner's own data file: a CSV table (header optional) or an NPZ archive of arrays x and y.

Every way a file can be malformed gets an error that names the file, the line
(or array index) and column, and what to do, so a learner can fix the file
rather than guess. The checks every source of arrays shares (``check_layout``,
``check_labels``) live here too, so a file's arrays are checked before they are
decompressed or converted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

MAX_BYTES = 1 << 30
"""Largest data file read unless ``max_bytes=`` or ``MLKIT_MAX_DATA_BYTES`` says otherwise: a CSV's size
on disk, or what an NPZ's arrays declare they take once decompressed (checked before decompressing)."""

_CHUNK = 1 << 23  # characters of CSV text parsed at a time: memory stays near the size of the result


def read_table(
    path: Path, label: str | int | None = None, *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and labels from a learner's CSV (header optional) or NPZ (arrays x, y) file.

    The label is the CSV column named or numbered (from 0) by ``label``, else the last. A file past
    ``max_bytes`` (default :data:`MAX_BYTES`) is refused before it is read.
    """
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}")
    limit = _limit(max_bytes)
    if path.suffix.lower() == ".npz":
        if label is not None:
            raise ValueError(f"label= picks a CSV column; {path} is an NPZ file, whose labels are its array 'y'.")
        return _read_npz(path, limit)
    size = path.stat().st_size
    if size > limit:
        raise ValueError(_too_big(path, f"is {_mib(size)}", limit))
    try:
        return _read_csv(path, label)
    except csv.Error as e:  # a field past the csv module's limit, most often a quote that is never closed
        raise ValueError(
            f"{path} cannot be read as a CSV table ({e}): a field longer than {csv.field_size_limit() // 1024} KiB "
            f'is no number, and usually means a quote (") left open runs on over the lines after it. '
            f"Close the quote or remove it."
        ) from None
    except UnicodeDecodeError:
        line, byte = _undecodable(path)
        raise ValueError(
            f"{path}, line {line}: byte {byte:#04x} is not UTF-8 text; save the file as UTF-8 "
            f"(a spreadsheet calls it 'CSV UTF-8') and load it again."
        ) from None


def check_layout(x_shape: tuple, x_dtype: np.dtype, y_shape: tuple, y_dtype: np.dtype, source: str) -> None:
    """Refuse arrays that cannot be features and labels, from their shapes and dtypes alone."""
    for name, dtype, kinds in (("x", x_dtype, "biuf"), ("y", y_dtype, "biufU")):
        if dtype.kind not in kinds:
            fix = {
                "O": "it holds Python objects, not numbers; store numbers (or text labels)",
                "c": f"it holds complex numbers; store real ones, e.g. {name}.real or np.abs({name})",
                "S": f"it holds bytes; store text labels as str, e.g. {name}.astype(str)",
            }.get(dtype.kind, "store numbers" + (" or text labels" if name == "y" else ""))
            raise ValueError(f"{source}: {name} has dtype {dtype}: {fix}.")
    if len(x_shape) == 0 or x_shape[0] == 0 or math.prod(x_shape[1:]) == 0:
        raise ValueError(f"{source}: x has shape {x_shape}; expected one row of features per example.")
    if len(y_shape) != 1:
        raise ValueError(
            f"{source}: y has shape {y_shape}; expected one label per example, shape ({x_shape[0]},). "
            f"For one-hot labels store y.argmax(1); for a single column, y.ravel()."
        )
    if x_shape[0] != y_shape[0]:
        raise ValueError(
            f"{source}: x has {x_shape[0]} rows but y has {y_shape[0]}; they must match, one label per row."
        )


def check_labels(y: np.ndarray, source: str) -> None:
    """Refuse NaN or infinite targets and empty, NaN or NUL text labels: none of them is a label."""
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
    elif y.dtype.kind == "U":
        bad = np.isin(y, [u for u in np.unique(y) if _label_problem(u)])
    else:
        return
    if bad.any():
        where = int(np.argmax(bad))
        value = y[where].item()
        problem = _label_problem(value) if isinstance(value, str) else "NaN or infinite"
        raise ValueError(
            f"{source}: y[{where}] = {value!r} is {problem}; every example needs a label: fill it in or drop the row."
        )


def _read_csv(path: Path, label: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    # utf-8-sig: a byte-order mark is no part of the first cell; text mode reads CRLF as \n
    with open(path, encoding="utf-8-sig") as f:
        text = _chunk(f)
        rows = csv.reader(io.StringIO(text))
        first = next((r for r in rows if r), None)
        header_line = rows.line_num
        second = next((r for r in rows if r), None)
        if first is None:
            raise ValueError(f"{path} is empty; expected rows of comma-separated numbers with a label column.")
        width = len(first)
        if width < 2:
            raise ValueError(
                f"{path} needs at least one feature column and a label column, separated by commas "
                f"(not semicolons or tabs)."
            )
        column, header = _layout(first, second, label, path)
        line = 1
        if header:
            parts = text.split("\n", header_line)
            text, line = (parts[header_line] if len(parts) > header_line else "") or _chunk(f), header_line + 1
        names = [f"column {k + 1}" + (f" ({header[k]!r})" if header else "") for k in range(width) if k != column]
        xs, ys = [], []
        while text:
            x, y = _parse_plain(text, width, column) or _parse_rows(text, line, width, column, names, path)
            xs.append(x)
            ys.append(y)
            line += text.count("\n")
            text = _chunk(f)
    if not sum(map(len, xs)):
        raise ValueError(f"{path} has no data rows; expected rows of numbers with a label column below the header.")
    x, labels = np.concatenate(xs), np.concatenate(ys)
    try:
        return x, labels.astype(np.float64)  # a label column of numbers: classes or regression targets
    except ValueError:
        return x, labels


def _chunk(f: io.TextIOBase) -> str:
    """The next ~``_CHUNK`` characters, extended to whole lines and to whole quoted fields (which may span lines)."""
    text = f.read(_CHUNK) + f.readline()
    while text.count('"') % 2 and (more := f.readline()):
        text += more
    return text


def _layout(
    first: list[str], second: list[str] | None, label: str | int | None, path: Path
) -> tuple[int, list[str] | None]:
    """The label column and the header (None when the first row is data).

    The first row is a header when a feature cell in it is not a number, or when only its
    label cell is text while the next row's label is a number (``0,1,label`` over ``3,4,1``).
    """
    width, cells = len(first), [c.strip() for c in first]
    if isinstance(label, str):
        if label not in cells:
            shown = "(none)" if all(map(_parses, cells)) else cells
            raise ValueError(f"No column named {label!r} in {path}; its header is {shown}.")
        return cells.index(label), cells
    if label is not None and not -width <= label < width:
        raise ValueError(f"label column {label} is out of range for {path}, which has {width} columns.")
    column = width - 1 if label is None else label % width
    text_label = bool(cells[column]) and not _parses(cells[column])
    numeric_next = second is not None and len(second) > column and _parses(second[column])
    header = not all(map(_parses, cells[:column] + cells[column + 1 :])) or (text_label and numeric_next)
    return column, cells if header else None


def _parse_plain(text: str, width: int, column: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A chunk of plain rows (no quotes, NUL or blank lines) parsed in C; None if it needs the precise reader."""
    lines = text.rstrip("\n").split("\n")  # blank lines at the end of a file are no rows
    if '"' in text or "\x00" in text or "" in lines or text.count(",") != (width - 1) * len(lines):
        return None
    features = [k for k in range(width) if k != column]
    try:
        x = np.loadtxt(lines, np.float64, comments=None, delimiter=",", usecols=features, ndmin=2)
        y = np.char.strip(np.loadtxt(lines, str, comments=None, delimiter=",", usecols=column, ndmin=1))
    except ValueError:
        return None
    with np.errstate(over="ignore"):  # 1e39 becomes inf in float32, found just below
        x = x.astype(np.float32)
    if not np.isfinite(x).all() or any(_label_problem(u) for u in np.unique(y)):
        return None
    return x, y


def _parse_rows(
    text: str, line: int, width: int, column: int, names: list[str], path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The precise reader, row by row: the rows, or an error naming the first bad line and column."""
    reader = csv.reader(io.StringIO(text))
    features, labels = [], []
    for row in reader:
        if not row:
            continue
        where = f"{path}, line {line + reader.line_num - 1}"
        if len(row) != width:
            raise ValueError(f"{where}: {len(row)} fields, expected {width} like the first row.")
        target = row[column].strip()
        if problem := _label_problem(target):
            raise ValueError(
                f"{where}: the label {target!r} is {problem}; every row needs a label: fill it in or drop the row."
            )
        cells = row[:column] + row[column + 1 :]
        bad = next((k for k, cell in enumerate(cells) if not _parses(cell)), None)
        if bad is not None:
            raise ValueError(
                f"{where}, {names[bad]}: {cells[bad]!r} is not a number; every feature must be numeric "
                f"(only the label column may hold text)."
            )
        with np.errstate(over="ignore"):
            values = np.asarray([float(c) for c in cells], np.float32)
        if not np.isfinite(values).all():
            k = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(
                f"{where}, {names[k]}: {cells[k].strip()!r} is not a finite 32-bit number (NaN, infinite, or beyond "
                f"±3.4e38); fix or drop the row, or rescale the column."
            )
        features.append(values)
        labels.append(target)
    return np.asarray(features, np.float32).reshape(-1, width - 1), np.asarray(labels, str)


def _read_npz(path: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """x (float32) and y, checked from the .npy headers before anything is decompressed."""
    with _readable(path):
        archive = zipfile.ZipFile(path)
    with archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        if not {"x", "y"} <= members.keys():
            raise ValueError(f"{path} holds arrays {sorted(members)}; expected 'x' (features) and 'y' (labels).")
        (x_shape, x_dtype), (y_shape, y_dtype) = (_npy_header(archive, members[k], path) for k in "xy")
        declared = math.prod(x_shape) * x_dtype.itemsize + math.prod(y_shape) * y_dtype.itemsize
        if declared > limit:
            arrays = f"x {x_shape} {x_dtype}, y {y_shape} {y_dtype}"
            raise ValueError(_too_big(path, f"declares arrays of {_mib(declared)} once decompressed ({arrays})", limit))
        check_layout(x_shape, x_dtype, y_shape, y_dtype, str(path))
        with _readable(path):
            for k in "xy":
                check_held(members[k], *npy_header(archive, members[k]))
        x, y = (_npy_array(archive, members[k], path) for k in "xy")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x32))[0])
        raise ValueError(
            f"{path}: x[{', '.join(map(str, index))}] = {x[index].item()!r} is not a finite 32-bit number "
            f"(NaN, infinite, or beyond ±3.4e38); fix or drop those rows, or rescale the feature."
        )
    check_labels(y, str(path))
    return x32, y


def _npy_array(archive: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    with _readable(path), archive.open(member) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _npy_header(archive: zipfile.ZipFile, member: str, path: Path) -> tuple[tuple, np.dtype]:
    """A member's shape and dtype from its .npy header: a few hundred bytes decompressed, not the array."""
    with _readable(path):
        return npy_header(archive, member)[:2]


def npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple, np.dtype, int]:
    """The shape and dtype an archive's ``.npy`` member declares in its header, and the bytes of data after the
    header, read without the array (numpy allocates the declared size before it reads a byte of it)."""
    info = archive.getinfo(member)
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"'{member}' uses .npy format {version}, which holds structured arrays")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        return shape, dtype, info.file_size - f.tell()


def check_held(member: str, shape: tuple, dtype: np.dtype, held: int) -> None:
    """Refuse a member whose header declares more bytes than follow it (truncated, or altered to ask for memory)."""
    declared = math.prod(shape) * dtype.itemsize
    if declared > held:
        raise ValueError(
            f"'{member}' declares an array of shape {shape} and dtype {dtype} ({declared:,} bytes) but holds "
            f"{max(held, 0):,} bytes of data (truncated or altered)"
        )


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Every way an archive can fail to read becomes one message naming the file."""
    try:
        yield
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error) as e:
        message = f"{path} is not a readable .npz of numeric arrays 'x' and 'y' ({e})."
        raise ValueError(message + " Save one with np.savez(path, x=x, y=y).") from e


def _label_problem(cell: str) -> str:
    """Why a label cell is no label ('' when it is one)."""
    if not cell.strip():
        return "empty"
    if "\x00" in cell:
        return "not text (it holds a NUL byte)"
    return "" if not _parses(cell) or math.isfinite(float(cell)) else "NaN or infinite"


def _parses(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _limit(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return max_bytes
    setting = os.environ.get("MLKIT_MAX_DATA_BYTES", str(MAX_BYTES))
    if not setting.isdigit():
        raise ValueError(f"MLKIT_MAX_DATA_BYTES must be a whole number of bytes, got {setting!r}.")
    return int(setting)


def _too_big(path: Path, what: str, limit: int) -> str:
    return (
        f"{path} {what}, above the limit of {_mib(limit)} for a data file; to read it anyway pass "
        f"max_bytes= to load_dataset, or set MLKIT_MAX_DATA_BYTES (bytes)."
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _undecodable(path: Path) -> tuple[int, int]:
    """The first line that is not UTF-8, and its first bad byte."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if (start := _first_bad_byte(raw)) is not None:
                return number, raw[start]
    return 0, 0


def _first_bad_byte(raw: bytes) -> int | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return None
