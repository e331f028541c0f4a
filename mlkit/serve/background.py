"""A server in a child process, from Python: for notebooks, tests and scripts.

::

    with mlkit.serve.Server("model/", max_batch=16) as server:
        httpx.post(f"{server.url}/predict", json={"inputs": rows.tolist()})

:class:`Server` runs ``python -m mlkit serve`` (the same program an operator
runs) as a child process on 127.0.0.1 and a port the kernel picks, reads the
one ready line it prints, then waits until ``/health`` answers 200; both waits
are bounded. Leaving the ``with`` block (or :meth:`Server.stop`, or the end of
the Python process) sends SIGINT, as Ctrl-C does (the requests in flight are answered, with
no drain period: nothing balances load onto a notebook's server), and
kills the process if it has not gone within a timeout; and a server whose
parent Python process died without stopping it stops itself within a second.
A start that fails raises RuntimeError with what the server printed on stderr.

A child process rather than a thread: the notebook's own event loop, JAX state
and signal handlers stay untouched, the server starts with synchronous dispatch
(which must be chosen before JAX starts), and stopping it is clean.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from mlkit.serve.runner import READY, WATCH
from mlkit.serve.settings import Settings

STDERR_LINES = 200  # kept from the server's stderr, for error messages


class Server:
    """``python -m mlkit serve PATH`` in a child process; ``url`` once started. Use it as a context manager.

    ``options`` are :class:`~mlkit.serve.settings.Settings` fields (checked here, before anything starts);
    ``port`` defaults to 0 (any free port). ``start_timeout`` bounds the wait for the ready line and /health.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        port: int = 0,
        start_timeout: float = 120.0,
        env: dict[str, str] | None = None,
        **options: Any,
    ):
        self.settings = Settings(Path(path), port=port, **options)
        self.start_timeout = start_timeout
        self.env = env
        self.url: str | None = None
        self.ready_line: str | None = None
        self.process: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._stderr: collections.deque[str | None] = collections.deque(maxlen=STDERR_LINES)
        self._key_file: Path | None = None  # the signing key, handed to the child in an owner-only file

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def command(self) -> list[str]:
        """The command line this server runs."""
        args = [sys.executable, "-m", "mlkit", "serve", str(self.settings.path)]
        for f in dataclasses.fields(Settings):  # each option as Settings names it, when not its default
            option, value = f.metadata.get("option"), getattr(self.settings, f.name)
            if option is None or value == f.default:
                continue
            if isinstance(value, bool):
                args.append(option if value else "--no-" + option.removeprefix("--"))
            else:
                args += [option, str(value)]
        if self._key_file is not None:
            args += ["--key-file", str(self._key_file)]
        return args

    def start(self) -> Server:
        """Start the process and wait until it serves; raises RuntimeError (and stops it) if it does not."""
        if self.process is not None:
            raise RuntimeError(f"This server is already started ({self.url}); stop it first or make another.")
        env = {**os.environ, WATCH: "1", **(self.env or {})}
        if self.settings.key is not None:  # never on the command line, where `ps` would show it
            handle, name = tempfile.mkstemp(prefix="mlkit-key-")  # created readable by this user only
            with os.fdopen(handle, "wb") as f:
                f.write(self.settings.key)
            self._key_file = Path(name)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        atexit.register(self.stop)
        # Both pipes are read all the time, so a chatty server never blocks on a full pipe.
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self._stderr.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + self.start_timeout
        try:
            self.url = self._wait_for_url(deadline)
            self._wait_for_health(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT (requests in flight are answered), then SIGKILL after ``timeout`` s; returns the exit status."""
        process = self.process
        if process is None:
            return None
        atexit.unregister(self.stop)
        if self._key_file is not None:
            self._key_file.unlink(missing_ok=True)  # the child read it at start and on reloads reuses its copy
            self._key_file = None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for reader in self._readers:
            reader.join(5)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        return process.returncode

    def stderr(self) -> str:
        """The last lines the server wrote on stderr (its warnings and errors)."""
        return "\n".join(line for line in self._stderr if line is not None)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process is not None and self.process.poll() is None else "stopped"
        return f"Server({str(self.settings.path)!r}, url={self.url!r}, {state})"

    @staticmethod
    def _read(pipe: IO[bytes] | None, keep: Callable[[Any], None]) -> None:
        if pipe is None:
            return
        for raw in pipe:
            keep(raw.decode(errors="replace").rstrip("\n"))
        keep(None)

    def _wait_for_url(self, deadline: float) -> str:
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
            except queue.Empty:
                line = ""
            if line is None:
                raise RuntimeError(self._failure("exited before it was ready", exiting=True))
            found = re.search(r"https?://\S+", line) if line.startswith(READY) else None
            if found:
                self.ready_line = line
                return found.group(0)
            if time.monotonic() > deadline:
                raise RuntimeError(self._failure(f"printed no ready line within {self.start_timeout:.0f} s"))

    def _wait_for_health(self, deadline: float) -> None:
        problem = wait_for_ok(lambda client: client.get(f"{self.url}/health"), deadline, self.process, timeout=2.0)
        if problem is None:
            return
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(self._failure("exited before /health answered", exiting=True))
        raise RuntimeError(self._failure(f"did not answer /health within {self.start_timeout:.0f} s ({problem})"))

    def _failure(self, what: str, exiting: bool = False) -> str:
        """What went wrong, with the exit status and the end of stderr (both complete once a dying process is gone)."""
        if exiting and self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)  # its stdout closed a moment before it exited
            for reader in self._readers:
                reader.join(5)
        code = None if self.process is None else self.process.poll()
        status = f" with exit status {code}" if code is not None else ""
        err = self.stderr().strip()[-2000:] or "(nothing on stderr)"
        return f"mlkit serve {Path(self.settings.path)} {what}{status}. Command: {' '.join(self.command())}\n{err}"


def wait_for_ok(
    send: Callable[[httpx.Client], httpx.Response],
    deadline: float,
    process: subprocess.Popen | None = None,
    *,
    timeout: float = 5.0,
    interval: float = 0.05,
) -> str | None:
    """Repeat ``send`` until it answers 200 (then None), ``process`` exits or the ``time.monotonic()``
    ``deadline`` passes (then the last problem seen, for the error message)."""
    last = "no answer"
    with httpx.Client(timeout=timeout, trust_env=False) as client:
        while time.monotonic() < deadline and (process is None or process.poll() is None):
            try:
                response = send(client)
                if response.status_code == 200:
                    return None
                last = f"status {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(interval)
    return last
