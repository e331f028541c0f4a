"""Trusting an artifact's program: a signature made with a key, or a first run in a child process.

A jax.export payload is a program, not data. jax's deserializer and XLA do what
its bytes say, and bytes they were not written for can crash the process that
reads them (SIGSEGV, SIGABRT) or run forever; a checksum beside the payload only
catches accidents, since whoever edits the payload can edit the checksum too.
So :func:`mlkit.load_predictor` trusts a payload in one of two ways:

- **Signed**: the artifact's ``manifest.sig`` is an HMAC-SHA256 of its
  ``manifest.json`` made with the key the reader holds
  (``save_predictor(..., key=KEY)``, ``load_predictor(..., key=KEY)``), or with
  this machine's own key, which ``save_predictor`` uses when given none. That key
  is 32 random bytes kept in ``~/.cache/mlkit/artifact.key`` (``$XDG_CACHE_HOME``
  if set), readable only by its owner: what you saved yourself loads at full
  speed; delete the file to stop trusting everything saved before.
- **Checked**: anything else is first deserialized and run in a fresh Python
  (this file run as a script: it imports JAX and NumPy, not mlkit) with a time
  limit, on the artifact's own check rows and at its small batch sizes. A crash,
  an abort or a hang ends that child, not the caller, who gets a ValueError that
  names the artifact. The child's answers must match the ones recorded at save
  time, so a payload changed to give other answers is refused as well. An
  ``.onnx`` file is checked the same way, run by ONNX Runtime instead of JAX.
  The child dies with its caller (``PR_SET_PDEATHSIG`` on Linux, a watch on its
  parent's pid elsewhere) and ends itself past its own time limit (``SIGALRM``).

The check costs a fresh Python and JAX: about 1 s on a 2-core machine (see
``docs/design.md``). It proves that the program reads and answers its check rows
here; it does not prove that every input or batch size terminates.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

KEY_ENV = "MLKIT_ARTIFACT_KEY"  # where `python -m mlkit predict` and `serve` look for a key (or --key-file)
MIN_KEY_BYTES = 16
TIMEOUT_S = 60.0  # for the child: a fresh Python, JAX, one deserialization and a few small compiles
CHECK_BATCHES = 64  # the child runs every batch bucket up to this many rows
_SIGNATURE = b"hmac-sha256:"
_OUTPUT_CAP = 64 << 20  # the most the child's report may hold
_GRACE_S = 5.0  # the child's own limit is the caller's plus this, so the caller's (clearer) message comes first


def as_key(key: bytes | str, source: str = "the key") -> bytes:
    """``key`` as bytes, refused if it is too short to be a secret."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise ValueError(
            f"{source} is {len(raw)} bytes; a signing key needs at least {MIN_KEY_BYTES}. Make one with "
            f'python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return raw


def key_from(key_file: str | os.PathLike | None) -> bytes | None:
    """The key the command line was given: the contents of ``key_file``, else ``$MLKIT_ARTIFACT_KEY``, else None."""
    if key_file is not None:
        from mlkit.storage import read_file

        if not Path(key_file).exists():
            raise FileNotFoundError(
                f"The key file {key_file} (--key-file) does not exist: give the file that holds the signing key "
                f"(at least 16 bytes), or set ${KEY_ENV} instead."
            )
        if Path(key_file).is_dir():
            raise ValueError(
                f"The key file {key_file} (--key-file) is a directory: give the file inside it that holds the "
                f"signing key (at least 16 bytes), or set ${KEY_ENV} instead."
            )
        raw = read_file(key_file, cap=4096, what=f"the key file {key_file}").strip()
        return as_key(raw, f"the key file {key_file}")
    value = os.environ.get(KEY_ENV)
    return None if not value else as_key(value.strip(), f"${KEY_ENV}")


def sign(manifest: bytes, key: bytes) -> bytes:
    """The contents of ``manifest.sig``: an HMAC-SHA256 of the manifest's bytes."""
    return _SIGNATURE + hmac.new(key, manifest, hashlib.sha256).hexdigest().encode() + b"\n"


def signed_with(manifest: bytes, signature: bytes | None, key: bytes | None) -> bool:
    """Whether ``signature`` is the HMAC of ``manifest`` with ``key`` (compared in constant time)."""
    return signature is not None and key is not None and hmac.compare_digest(sign(manifest, key), signature)


def machine_key(create: bool = False) -> bytes | None:
    """This machine's signing key (made on first use if ``create``); None where there is none to be had.

    A key that others could read or write is not used: they could sign with it.
    """
    path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlkit" / "artifact.key"
    try:
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # whole or not at all; a process that got there first wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if info.st_mode & 0o077 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
                return None
            return f.read(4096).strip() or None
    except OSError:  # no home, a read-only disk: artifacts are then unsigned and checked when loaded
        return None


def check_program(exported: Any, metadata: dict) -> str | None:
    """What does not match between the deserialized program and its metadata, or None.

    Read from ``exported``'s description alone (its input and output shapes, platforms,
    devices, effects): nothing runs. Used by the child and again by the loading process.
    """
    n, k = metadata["input"]["shape"][1], metadata["output"]["shape"][1]
    ins, outs = exported.in_avals, exported.out_avals
    takes = ", ".join(aval.str_short() for aval in ins)
    gives = ", ".join(aval.str_short() for aval in outs)
    if len(ins) != 1 or len(ins[0].shape) != 2 or ins[0].shape[1] != n or str(ins[0].dtype) != "float32":
        return f"the program takes ({takes}), the metadata says float32[b,{n}]"
    batch = ins[0].shape[0]
    if isinstance(batch, int):
        return f"the program takes only batches of exactly {batch} rows ({takes}); export it with a symbolic batch"
    if len(outs) != 1 or len(outs[0].shape) != 2 or outs[0].shape[1] != k or str(outs[0].dtype) != "float32":
        return f"the program gives ({gives}), the metadata says float32[b,{k}]"
    if outs[0].shape[0] != batch:
        return f"the program gives ({gives}) for ({takes}): one output row per input row was expected"
    if list(exported.platforms) != metadata["platforms"]:
        return f"the program is for the platforms {list(exported.platforms)}, the metadata says {metadata['platforms']}"
    if exported.nr_devices != 1:
        return f"the program needs {exported.nr_devices} devices; a predictor runs on one"
    if exported.ordered_effects or exported.unordered_effects:
        return "the program has side effects; a predictor is a pure function"
    if exported.calling_convention_version != metadata["versions"]["calling_convention"]:
        return (
            f"the program uses calling convention {exported.calling_convention_version}, "
            f"the metadata says {metadata['versions']['calling_convention']}"
        )
    return None


def run_in_child(
    payload: bytes,
    metadata: dict,
    rows: np.ndarray,
    source: str,
    timeout: float | None = None,
    *,
    runtime: str = "jax",
) -> np.ndarray:
    """Deserialize ``payload`` and run it on ``rows`` in a fresh Python; its outputs for ``rows``.

    ``runtime="jax"``: a jax.export payload and its ``metadata.json``; ``"onnx"``: an ``.onnx`` file's
    bytes, run by ONNX Runtime, and ``{"output": its output's name, "width": its columns}``.
    Raises ValueError, naming ``source``, if the child crashes, aborts, runs past ``timeout``
    seconds (default ``TIMEOUT_S``), or reports a program that does not match ``metadata`` or fails.
    """
    timeout = TIMEOUT_S if timeout is None else timeout
    if runtime == "onnx":
        buckets, described = [1, CHECK_BATCHES], metadata
    else:
        buckets = [b for b in metadata["buckets"] if b <= CHECK_BATCHES]
        described = {key: metadata[key] for key in ("input", "output", "platforms", "versions")}
        described["width"] = metadata["output"]["shape"][1]
    spec = {"rows": rows.tolist(), "batches": sorted({len(rows), *buckets}), "runtime": runtime, "metadata": described}
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # share a GPU with the caller, not grab it
    command = [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), f"{timeout + _GRACE_S:g}"]
    blame = (
        "Do not load it: its program is damaged or was not written by mlkit. Re-save it from the trained "
        "model; if it comes from someone you trust, ask for it signed (save_predictor(..., key=KEY)) and "
        "load it with that key."
    )
    too_long = lambda stdout: ValueError(
        f"{source}: checking its program in a child process took more than {timeout:g} s ({_stage(stdout)}), so "
        f"it was stopped; a program that never returns would hang whoever loads it. {blame} (On a very slow or "
        f"busy machine, pass a larger verify_timeout.)"
    )
    try:
        done = subprocess.run(
            command, input=json.dumps(spec).encode() + b"\n" + payload, capture_output=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired as e:
        raise too_long(e.stdout) from None
    if done.returncode == -getattr(signal, "SIGALRM", 0):  # the child's own time limit (see _die_with)
        raise too_long(done.stdout)
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name if -done.returncode in signal.valid_signals() else "a signal"
        raise ValueError(
            f"{source}: its program crashed the child process that checked it ({name}, {_stage(done.stdout)}). "
            f"Loaded here, it would have crashed this process. {blame}"
        )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines() or ["(nothing)"]
        raise ValueError(f"{source}: its program does not pass the check ({said[-1][:500]}). {blame}")
    try:
        return np.asarray(json.loads(done.stdout[-_OUTPUT_CAP:].splitlines()[-1])["outputs"], np.float32)
    except (IndexError, KeyError, TypeError, ValueError):
        raise ValueError(f"{source}: the child process that checked its program gave no answers. {blame}") from None


def _stage(stdout: bytes | None) -> str:
    lines = (stdout or b"").decode(errors="replace").split()
    if not lines:
        return "while starting Python and JAX and reading the program"
    if lines[-1] == "deserialized":
        return "after reading the program, while checking it"
    return f"while running the program on {lines[-1]} rows"


def check_answers(got: np.ndarray, expected: np.ndarray, allowed: float, source: str, changed: str) -> None:
    """Refuse, naming ``source``, a program whose answers ``got`` are more than ``allowed`` off those recorded."""
    off = float(np.abs(got - expected).max()) if got.shape == expected.shape else math.inf
    if not off <= allowed:
        raise ValueError(
            f"{source}: its program answers its check rows differently from when it was saved (off by "
            f"{off:.3g}, {allowed:.1g} allowed): {changed} was changed. Re-save the artifact."
        )


def _child() -> None:
    """The child's side: spec and payload on stdin; progress, then the outputs for the check rows, on stdout."""
    del sys.path[0]  # this script's own folder: its module names are mlkit's, not for JAX to find
    spec = json.loads(sys.stdin.buffer.readline())
    payload, described = sys.stdin.buffer.read(), spec["metadata"]
    if spec["runtime"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
        run = lambda x: session.run([described["output"]], {"x": x})[0]
    else:
        import jax

        exported = jax.export.deserialize(bytearray(payload))
        problem = check_program(exported, described)
        if problem:
            sys.exit(f"{problem}; the two files do not belong together")
        run = exported.call
    print("deserialized", flush=True)
    rows = np.asarray(spec["rows"], np.float32)
    answers = None
    for batch in spec["batches"]:
        print(batch, flush=True)
        out = np.asarray(run(np.resize(rows, (batch, rows.shape[1]))))
        if out.shape != (batch, described["width"]) or not np.isfinite(out).all():
            sys.exit(f"on {batch} check rows it answered shape {out.shape}, finite: {bool(np.isfinite(out).all())}")
        if batch == len(rows):
            answers = out
    print(json.dumps({"outputs": np.asarray(answers).tolist()}), flush=True)


def _die_with(parent: int, seconds: float) -> None:
    """End this child when ``parent`` ends (killed, even by SIGKILL) and after ``seconds`` in any case.

    The caller stops a child that runs past its time limit, but a caller that is itself killed
    cannot: without this, a program that never returns would run on after it, for ever.
    """
    if sys.platform.startswith("linux"):  # the kernel sends SIGKILL when the parent goes: PR_SET_PDEATHSIG
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)
    if hasattr(signal, "alarm"):  # the default action of SIGALRM ends the process, even inside XLA's C++
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(max(1, math.ceil(seconds)))

    def watch() -> None:  # where neither exists (macOS has no PR_SET_PDEATHSIG, Windows no SIGALRM)
        deadline = time.monotonic() + seconds
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) == 3:  # started by run_in_child: its pid and the time limit
        _die_with(int(sys.argv[1]), float(sys.argv[2]))
    try:
        _child()
    except Exception as e:  # a program jax cannot read: say what, in one line, for the parent's message
        sys.exit(f"{type(e).__name__}: {str(e)[:400]}")
