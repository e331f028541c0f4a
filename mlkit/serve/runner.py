"""Running the server: uvicorn in this process, or several worker processes sharing one socket.

:func:`run` is what ``python -m mlkit serve`` calls. It binds the listening socket
itself, before anything loads, so ``port=0`` gets a free port from the kernel
with no race, a taken port fails at once with a clear error, and every worker
process accepts on the same socket (the kernel hands each new connection to one
of them). When every worker has loaded its model, compiled its batch shape and
started serving, it prints exactly one line to stdout, with the URL::

    mlkit serve: http://127.0.0.1:8000 (classification, 64 inputs, max batch 64, 1 worker; Ctrl-C stops)

SIGTERM or Ctrl-C stops it gracefully: the socket stops accepting, requests in
flight (queued ones included) are answered, then the process exits 0.

With ``workers=1`` (the default) uvicorn runs right here. With more, this process
only supervises: it starts the workers (the ``spawn`` way: each a fresh Python
that loads the artifact itself), forwards SIGTERM to them, replaces a worker that
dies, and gives them a shared directory for their metrics (see
:mod:`mlkit.serve.metrics`). Each worker batches on its own, so the batches are
smaller than one worker's would be at the same load; workers pay off when the
per-request Python work, not the model, is what keeps a core busy.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
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

from mlkit.infer.dispatch import prefer_sync_dispatch
from mlkit.serve.app import create_app
from mlkit.serve.model import ServedModel, load_for
from mlkit.serve.settings import Settings

WATCH = "MLKIT_SERVE_STOP_WITH_PARENT"  # "1": stop (gracefully) when the parent process is gone
READY = "mlkit serve: "  # the ready line starts with this; mlkit.serve.Server reads the URL after it
MAX_RESTARTS = 5  # per worker slot, before the supervisor gives up on a worker that keeps dying


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
        if settings.workers == 1:
            return _serve_here(settings, sock)
        return _supervise(settings, sock)
    finally:
        sock.close()


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _ready_line(settings: Settings, model_task: str, inputs: str, url: str) -> str:
    workers = f"{settings.workers} worker" + ("s" if settings.workers > 1 else "")
    batching = f"max batch {settings.max_batch}" if settings.batching else "batching off"
    return f"{READY}{url} ({model_task}, {inputs}, {batching}, {workers}; Ctrl-C stops)"


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


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling us when it really serves (after startup: model loaded, socket accepting)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]):
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def _uvicorn(settings: Settings, model: ServedModel, workers: int, on_ready: Callable[[], None]) -> _Uvicorn:
    app = create_app(settings, model, workers=workers)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        access_log=settings.access_log,
        proxy_headers=False,  # the admin routes trust the real peer address, never a forwarded header
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        lifespan="on",
    )
    server = _Uvicorn(config, on_ready)
    app.state.mlkit.open_connections = lambda: len(server.server_state.connections)
    return server


def _serve_here(settings: Settings, sock: socket.socket) -> int:
    model = load_for(settings)
    line = _ready_line(settings, model.task, model.inputs, url_of(sock, settings.host))
    server = _uvicorn(settings, model, 1, lambda: print(line, flush=True))
    with _signals_end_quietly():
        server.run(sockets=[sock])
    return 0 if server.started else 1


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
    ``MLKIT_SERVE_STOP_WITH_PARENT=1``), so a test run or a notebook kernel that dies takes its servers
    with it. The parent is gone when this process has been handed to another one (even while the old
    parent is still a zombie that nobody has reaped).
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mlkit-serve-watch", daemon=True).start()


def _worker(settings: Settings, sock: socket.socket, ready: Any, workers: int) -> None:
    """One worker process (spawned): load, serve on the shared socket, report readiness or the error."""
    prefer_sync_dispatch()
    _stop_with_parent()
    try:
        model = load_for(settings)
    except Exception as e:  # the supervisor prints it and stops; a traceback would bury the message
        ready.put(("error", os.getpid(), str(e)))
        sys.exit(2)
    facts = (model.task, model.inputs)
    server = _uvicorn(settings, model, workers, lambda: ready.put(("ready", os.getpid(), facts)))
    with _signals_end_quietly():
        server.run(sockets=[sock])


def _supervise(settings: Settings, sock: socket.socket) -> int:
    ctx = multiprocessing.get_context("spawn")
    metrics_dir = tempfile.mkdtemp(prefix="mlkit-serve-metrics-")
    previous_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the workers, read when they import prometheus
    ready = ctx.Queue()
    stopping = threading.Event()

    def start() -> multiprocessing.process.BaseProcess:
        process = ctx.Process(target=_worker, args=(settings, sock, ready, settings.workers), name="mlkit-serve-worker")
        process.start()
        return process

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, lambda number, frame: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    workers = [start() for _ in range(settings.workers)]
    try:
        problem, facts = _wait_ready(workers, ready, stopping)
        if problem:
            print(f"error: {problem}", file=sys.stderr, flush=True)
            return 2
        if stopping.is_set():
            return 0
        line = _ready_line(settings, *facts, url_of(sock, settings.host))
        print(line, flush=True)
        restarts = 0
        while not stopping.is_set():
            multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0.5)
            for i, worker in enumerate(workers):
                if worker.is_alive() or stopping.is_set():
                    continue
                _mark_dead(worker)
                restarts += 1
                if restarts > MAX_RESTARTS * settings.workers:
                    print("error: workers keep dying; stopping the server.", file=sys.stderr, flush=True)
                    return 1
                print(f"worker {worker.pid} exited ({worker.exitcode}); starting another", file=sys.stderr, flush=True)
                workers[i] = start()
        return 0
    finally:
        _stop(workers, settings.shutdown_timeout_s + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous_env
        ready.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _wait_ready(workers: list, ready: Any, stopping: threading.Event) -> tuple[str | None, tuple[str, str]]:
    """(None, (task, what one example is)) once every worker serves; otherwise (what went wrong, ...)."""
    waiting = {w.pid for w in workers}
    facts = ("", "")
    while waiting and not stopping.is_set():
        try:
            kind, pid, message = ready.get(timeout=0.5)
        except queue.Empty:  # check that they are all still alive
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                return f"worker {dead[0].pid} exited with code {dead[0].exitcode} before it was ready.", facts
            continue
        if kind == "error":
            return message, facts
        facts = message
        waiting.discard(pid)
    return None, facts


def _mark_dead(worker: multiprocessing.process.BaseProcess) -> None:
    from prometheus_client import multiprocess

    if worker.pid is not None:
        multiprocess.mark_process_dead(worker.pid)


def _stop(workers: list, timeout: float) -> None:
    """SIGTERM every worker (a graceful stop), wait, then kill any that are still there."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join(5)
        _mark_dead(worker)
