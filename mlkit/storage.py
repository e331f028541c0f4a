"""Files a reader can trust to be whole: written atomically, read with limits.

Shared by the three formats mlkit writes (the jax.export artifact directory, the
``.onnx`` file and the ``.npz`` checkpoint), so each one gets the same guarantees:

- :func:`write_atomically` writes a file beside its target and renames it into
  place, so a reader sees the old file or the new one, never half of one.
- :func:`write_directory` writes a directory beside its target and swaps the two
  with :func:`exchange`, in one step (``renameat2`` with ``RENAME_EXCHANGE`` on
  Linux, ``renamex_np`` with ``RENAME_SWAP`` on macOS), so a directory that is being
  replaced is never missing or half-written at any instant.
- :func:`read_file` refuses a symbolic link, anything that is not a plain file and
  a file larger than a cap, all before reading a byte.
- :func:`parse_json` refuses nesting deeper than a bound (checked on the bytes,
  before the recursive parser runs), duplicate keys, and NaN or infinity.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import glob
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MAX_JSON_DEPTH = 16  # mlkit's own JSON nests 3 deep; Python's parser recurses once per level
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def write_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to a hidden file beside ``path``, then rename it: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".saving", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; what mlkit saves is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)
    return path


def write_directory(path: Path, files: dict[str, bytes]) -> None:
    """Make ``path`` a directory holding exactly ``files``; at no instant is it missing or incomplete.

    The files are written into a hidden sibling directory, which then trades places with
    the old ``path`` in one :func:`exchange` before the old one is deleted. A write killed
    half-way leaves a hidden directory that the next write to the same path removes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.saving-"
    for left in path.parent.glob(glob.escape(prefix) + "*"):  # what writes killed half-way left behind
        pid = left.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=path.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; what mlkit saves is meant to be shared
        for name, data in files.items():
            _write(staging / name, data)
        sync_directory(staging)
        _take_place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # a half-written new directory, or the old one after the swap
    sync_directory(path.parent)


def _take_place(staging: Path, path: Path) -> None:
    """Give the complete ``staging`` directory the name ``path``; what was there ends up at ``staging``."""
    try:
        os.rename(staging, path)  # nothing there yet (or an empty directory): one rename
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if exchange(staging, path):
        return
    # This system cannot swap two directories: two renames, with a moment between them when path is missing.
    aside = staging.with_name(staging.name + "-old")
    os.rename(path, aside)
    os.rename(staging, path)
    os.rename(aside, staging)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _write(file: Path, data: bytes) -> None:
    with open(file, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened, as on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def exchange(a: Path, b: Path) -> bool:
    """Swap the directories ``a`` and ``b`` atomically; False (nothing changed) where the system cannot."""
    libc = _libc()
    if libc is None:
        return False
    old, new = os.fsencode(a), os.fsencode(b)
    if sys.platform == "darwin":
        done = libc.renamex_np(old, new, 0x2)  # RENAME_SWAP
    else:
        done = libc.renameat2(-100, old, -100, new, 0x2)  # AT_FDCWD, RENAME_EXCHANGE
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):  # this file system cannot swap
        return False
    raise OSError(code, f"{os.strerror(code)}: cannot swap {a} and {b}")


def _libc() -> Any:
    if sys.platform not in ("linux", "darwin"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") if sys.platform == "darwin" else None, use_errno=True)
        return libc if hasattr(libc, "renamex_np" if sys.platform == "darwin" else "renameat2") else None
    except OSError:
        return None


def read_file(
    name: str | os.PathLike,
    *,
    cap: int,
    what: str,
    limit: str = "",
    size: int | None = None,
    recorded: str = "",
    dir_fd: int | None = None,
) -> bytes:
    """The bytes of the plain file ``name`` (relative to ``dir_fd`` if given), checked before reading.

    Raises FileNotFoundError if it is missing and ValueError, naming ``what``, for a symbolic link,
    anything but a regular file, more than ``cap`` bytes (``limit`` names the setting that raises it),
    or a size other than ``size`` (as ``recorded`` in some other file).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # no wait on a FIFO
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(
                f"{what} is a symbolic link: mlkit reads only plain files it wrote itself, never what a link "
                f"points to. Replace the link with a copy of the file."
            ) from e
        raise
    try:  # checked before fdopen, which refuses a directory with a bare "[Errno 21] Is a directory"
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a pipe or a device"
            raise ValueError(
                f"{what} is not a plain file but {kind}: mlkit reads only files. Copy it again or re-save it."
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if info.st_size > cap:
            raise ValueError(
                f"{what} is {info.st_size:,} bytes, more than the {cap:,} allowed ({limit or 'a fixed limit'}): "
                f"refusing to read it."
            )
        if size is not None and info.st_size != size:
            raise ValueError(
                f"{what} is {info.st_size} bytes, expected {size} (recorded in {recorded}): the file is "
                f"truncated or altered (an interrupted copy?). Copy it again or re-save it."
            )
        data = f.read(cap + 1)
    if len(data) > cap:
        raise ValueError(f"{what} grew past {cap:,} bytes while being read. Copy it again or re-save it.")
    return data


def parse_json(data: bytes, what: str, max_depth: int = MAX_JSON_DEPTH, nonfinite: bool = False) -> Any:
    """``data`` parsed as strict JSON: ValueError, naming ``what``, for anything else.

    Strict means UTF-8, at most ``max_depth`` nested arrays or objects, no key twice in one
    object, and no NaN or Infinity (which Python's json reads by default) unless ``nonfinite``.
    """
    depth = json_depth(data)
    if depth > max_depth:
        raise ValueError(f"{what} nests {depth} levels deep, more than the {max_depth} allowed: it is not mlkit's.")
    try:
        constant = float if nonfinite else _no_constant
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, _Refused) as e:
        raise ValueError(f"{what} is not valid JSON ({e}): it is damaged or not mlkit's.") from e


def json_depth(data: bytes) -> int:
    """How deeply the arrays and objects in the JSON text ``data`` nest (brackets inside strings not counted)."""
    code = np.frombuffer(_STRINGS.sub(b'""', data), np.uint8)
    step = (code == ord("[")).astype(np.int64) + (code == ord("{")) - (code == ord("]")) - (code == ord("}"))
    return int(np.cumsum(step).max(initial=0))


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise _Refused(f"the key {twice[0]!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")
