"""Running the server: uvicorn in this process, or uvicorn's own worker processes sharing one socket.

:func:`run` is what ``python -m mlkit serve`` calls. It binds the listening socket
itself, before anything loads, so ``port=0`` gets a free port from the kernel
with no race and a taken port fails at once with a clear error. It then loads and
checks the artifact here (a broken one is an error with exit status 2, before any
worker starts). Once the server answers, it prints exactly one line to stdout::

    mlkit serve: http://127.0.0.1:8000 (classification, 64 inputs, max batch 64, 1 worker; Ctrl-C stops)

SIGTERM stops it gracefully, the way a load balancer expects: ``/health`` answers 503
at once while the socket goes on accepting and every request is answered for
``drain_s`` seconds (each answer closes its connection), then the socket stops
accepting, requests in flight (queued ones included) are answered, and the process
exits 0. Ctrl-C (SIGINT) does the same without the drain period.

With ``workers=1`` (the default) uvicorn serves the model loaded here. With more,
uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``) starts that many
fresh Pythons on the shared socket (the kernel hands each new connection to one),
replaces one that dies and stops them on SIGTERM (each drains as above); each loads the artifact itself and
shares its metrics through files (see :mod:`mlkit.serve.metrics`). Each worker
batches on its own, so batches are smaller than one worker's would be at the same
load; workers pay off when the per-request Python, not the model, keeps a core busy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from mlkit.infer.dispatch import prefer_sync_dispatch
from mlkit.serve.app import ServingApp, create_app
from mlkit.serve.model import load_for
from mlkit.serve.protocol import GuardedProtocol
from mlkit.serve.settings import Settings

WATCH = "MLKIT_SERVE_STOP_WITH_PARENT"  # "1": stop (gracefully) when the parent process is gone
READY = "mlkit serve: "  # the ready line starts with this; mlkit.serve.Server reads the URL after it
WORKER_START_S = 300.0  # the longest a worker may take to load, compile and start serving
FD_RESERVE = 64  # open files kept for other than connections (a serving process holds about 15)


def run(path: str | os.PathLike | Settings, **options: Any) -> int:
    """Serve the artifact at ``path`` until SIGTERM or Ctrl-C; returns the exit status (0 after a clean stop).

    ``options`` are :class:`~mlkit.serve.settings.Settings` fields (``port=0``, ``max_batch=1``, ...).
    Blocks: from a notebook, use :class:`mlkit.serve.Server`, which runs this in a child process.
    """
    settings = path if isinstance(path, Settings) else Settings(Path(path), **options)
    prefer_sync_dispatch()  # before JAX starts: this process only answers
    if os.environ.get(WATCH) == "1":
        _stop_with_parent()
    sock = _bind(settings.host, settings.port)
    if settings.host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"note: listening on {settings.host}: whoever can reach this machine can query the model "
            f"(the /admin routes still answer only 127.0.0.1).",
            file=sys.stderr,
            flush=True,
        )
    try:
        model = load_for(settings)  # checked here, once, before any worker starts
        port = sock.getsockname()[1]
        url = f"http://[{settings.host}]:{port}" if ":" in settings.host else f"http://{settings.host}:{port}"
        workers = f"{settings.workers} worker" + ("s" if settings.workers > 1 else "")
        batching = f"max batch {settings.max_batch}" if settings.batching else "batching off"
        line = f"{READY}{url} ({model.task}, {model.inputs}, {batching}, {workers}; Ctrl-C stops)"
        if settings.workers > 1:
            del model  # each worker loads its own
            return _workers(settings, sock, line)
        server = _Uvicorn(_config(settings, create_app(settings, model)), lambda: print(line, flush=True))
        with _signals_end_quietly():
            server.run(sockets=[sock])
        return 0 if server.started else 1
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(
            f"Cannot listen on {host}:{port} ({e.strerror or e}). Choose another --port (0 picks any free one) "
            f"or --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface)."
        ) from e
    sock.set_inheritable(True)
    return sock


def _config(settings: Settings, app: Any, **options: Any) -> uvicorn.Config:
    guarded = functools.partial(
        GuardedProtocol,
        idle_timeout_s=settings.idle_timeout_s,
        max_header_bytes=settings.max_header_bytes,
        max_connections=connection_cap(settings.max_connections),
    )
    return uvicorn.Config(
        app,
        http=guarded,  # type: ignore[arg-type]  # a partial of a protocol class is called as the class is
        timeout_keep_alive=max(1, math.ceil(settings.idle_timeout_s)),
        log_level=settings.log_level,
        access_log=settings.access_log,
        proxy_headers=False,  # the admin routes trust the real peer address, never a forwarded header
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        lifespan="on",
        **options,
    )


def connection_cap(wanted: int) -> int:
    """``wanted``, or fewer where the open-file limit (raised to its hard limit first) leaves no room for that
    many connections: past the limit the kernel's ``accept`` fails and new clients, ``/health`` included, are
    refused, whereas below it the oldest idle connection makes room (:mod:`mlkit.serve.protocol`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling us when it really serves (after startup), and telling the batcher how many
    connections are open (a request can only arrive on one of them)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.loaded_app
        while not isinstance(app, ServingApp) and hasattr(app, "app"):  # under uvicorn's own middleware, if any
            app = app.app
        if isinstance(app, ServingApp):
            app.mlkit.open_connections = lambda: len(self.server_state.connections)
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


@contextlib.contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """uvicorn raises the signal again after its graceful stop; with these handlers that returns instead of killing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda number, frame: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_with_parent() -> None:
    """SIGTERM this process (a graceful stop) as soon as its parent process is gone: no orphaned servers.

    Workers always do this; a server started by :class:`mlkit.serve.Server` does too (it sets
    ``MLKIT_SERVE_STOP_WITH_PARENT=1``). The parent is gone when this process has been handed to another one.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mlkit-serve-watch", daemon=True).start()


def worker_app(settings: Settings, workers: int) -> ServingApp:
    """The application of one worker process (uvicorn calls this in the fresh Python it started)."""
    prefer_sync_dispatch()
    _stop_with_parent()
    try:
        return create_app(settings, workers=workers)
    except Exception as e:  # checked by the parent a moment ago; uvicorn stops every worker on this exit status
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)


class _Workers(Multiprocess):
    """uvicorn's supervisor, printing the ready line once every worker serves; SIGTERM or Ctrl-C also ends
    the wait for them. uvicorn replaces a dead worker however often it dies; this one stops the server (exit
    status 1) when more than ``restart_limit`` replacements fall within ``restart_window_s`` seconds, a rate: a
    worker killed now and then is replaced for ever, one that dies as soon as it starts ends the server."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], line: str, settings: Settings):
        super().__init__(config, sockets)
        self.line, self.ready, self.failed = line, False, False
        self.restart_limit, self.restart_window_s = settings.restart_limit, settings.restart_window_s
        self.restarts: list[float] = []  # when each replacement started, within the window
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop_on)

    def _stop_on(self, number: int, frame: object) -> None:
        self.signal_queue.append(number)
        self.should_exit.set()

    def init_processes(self) -> None:
        super().init_processes()
        if all(process.wait_until_ready(WORKER_START_S, self.should_exit) for process in self.processes):
            self.ready = True
            print(self.line, flush=True)

    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        super().keep_subprocess_alive()
        now = time.monotonic()
        replaced = sum(old is not new for old, new in zip(before, self.processes, strict=False))
        self.restarts = [t for t in self.restarts if t > now - self.restart_window_s] + [now] * replaced
        if len(self.restarts) > self.restart_limit and not self.should_exit.is_set():
            print(
                f"error: workers keep dying: {len(self.restarts)} restarts within {self.restart_window_s:g} s "
                f"(--restart-limit {self.restart_limit}); stopping. The workers' stderr above says why.",
                file=sys.stderr,
                flush=True,
            )
            self.failed = True
            self.should_exit.set()


def _workers(settings: Settings, sock: socket.socket, line: str) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="mlkit-serve-metrics-")
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the workers, read when they import prometheus
    app = functools.partial(worker_app, settings, settings.workers)
    supervisor = _Workers(_config(settings, app, factory=True, workers=settings.workers), [sock], line, settings)
    try:
        supervisor.run()
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if supervisor.failed else 0 if supervisor.ready else 2
