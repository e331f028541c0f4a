"""What a server is told: one frozen dataclass, checked once, the same for every worker process.

The command line (``python -m mlkit serve``), :func:`mlkit.serve.run` and
:class:`mlkit.serve.Server` all end in a :class:`Settings`, so a default lives in
exactly one place and a bad value is refused, with what was expected, before
anything loads. Each field also carries its command-line option and help, from
which the command line builds its options and ``Server`` its child's command.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkit.infer.verify import as_key

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
MAX_BATCH_LIMIT = 4096  # one batch is one compiled shape; far past this a batch is a bulk job, not a request


def _option(default: Any, option: str, help: str, **more: Any) -> Any:
    """A field that is also ``option`` of ``python -m mlkit serve``."""
    return field(default=default, metadata={"option": option, "help": help, **more})


@dataclass(frozen=True)
class Settings:
    """How to serve one artifact. Times are in milliseconds, sizes in rows, requests or bytes as named.

    ``max_batch`` rows at most go to the model in one call (1 turns batching off);
    the oldest waiting request waits at most ``max_wait_ms`` for others to join its
    batch (a wait for the batch to fill; a busy model can keep it waiting longer;
    it ends sooner once every open connection's request is already waiting, since
    no other request can then arrive without a new connection);
    at most ``max_queue`` requests wait, after which a request is answered 503 at once.
    ``max_wait_ms=0`` batches only what piled up while the model was busy.

    ``fixed_shape`` runs every batch at exactly ``max_batch`` rows (padded), so an
    answer does not depend, even in the last bit, on which other requests shared
    its batch; off, a batch is padded only to the predictor's next bucket (faster
    for a large ``max_batch`` at low load; answers may then differ by about 1e-7
    from one grouping to another). ``model_delay_ms`` adds a sleep to every model
    call, to stand in for a bigger model in a lesson or a test.

    ``key`` (at least 16 bytes) makes the server load, at start and on every reload, only
    artifacts signed with it (``save_predictor(..., key=KEY)``); without it an artifact not
    signed on this machine has its program checked in a child process first
    (:mod:`mlkit.infer.verify`). It is never shown in ``repr``.

    A field whose metadata names an ``"option"`` is that option of ``python -m mlkit serve``, with
    the field's type, default, ``"help"`` and ``"choices"``; :class:`~mlkit.serve.Server` passes it
    the same way. A boolean is a switch pair (``--fixed-shape`` / ``--no-fixed-shape``).
    """

    path: Path
    host: str = _option("127.0.0.1", "--host", "interface to listen on; 127.0.0.1 is this machine only")
    port: int = _option(8000, "--port", "0 picks any free port")
    max_batch: int = _option(64, "--max-batch", "most rows per model call; 1 turns batching off")
    max_wait_ms: float = _option(2.0, "--max-wait-ms", "longest a request waits for a batch to fill")
    max_queue: int = _option(1024, "--max-queue", "requests allowed to wait; more get 503 at once")
    workers: int = _option(1, "--workers", "server processes, each with its own model")
    max_body_bytes: int = _option(1_000_000, "--max-body-bytes", "larger request bodies get 413")
    fixed_shape: bool = _option(
        True, "--fixed-shape", "pad every batch to --max-batch rows, so answers never depend on grouping"
    )
    max_input_z: float = _option(
        100.0, "--max-input-z", "inputs further than this many training SDs from the mean get 422; 0: any"
    )
    drift_window: int = _option(500, "--drift-window", "rows the drift watch's running mean remembers")
    drift_threshold: float = _option(0.5, "--drift-threshold", "largest |z| before /drift says drifted")
    drift_min_rows: int = _option(100, "--drift-min-rows", "rows seen before drift can be flagged")
    model_delay_ms: float = _option(0.0, "--model-delay-ms", "add to every model call (a bigger model)")
    idle_timeout_s: float = _option(
        5.0, "--idle-timeout", "seconds a connection may take to send a request's headers (idle keep-alive included)"
    )
    max_header_bytes: int = _option(32_768, "--max-header-bytes", "larger request headers get 431")
    max_connections: int = _option(
        1000, "--max-connections", "open connections at most; past it the oldest idle closes"
    )
    drain_s: float = _option(
        3.0, "--drain-s", "seconds after SIGTERM of /health 503 while requests are still taken (Ctrl-C: none)"
    )
    restart_limit: int = _option(10, "--restart-limit", "worker restarts allowed within --restart-window; more stop")
    restart_window_s: float = _option(30.0, "--restart-window", "seconds over which worker restarts count")
    shutdown_timeout_s: float = _option(10.0, "--shutdown-timeout", "seconds to finish requests on SIGTERM")
    log_level: str = _option("warning", "--log-level", "uvicorn's log level", choices=LOG_LEVELS)
    access_log: bool = _option(False, "--access-log", "log every request")
    key: bytes | None = field(default=None, repr=False)  # the command line reads it from --key-file

    def __post_init__(self):
        object.__setattr__(self, "path", Path(os.fspath(self.path)))
        if self.key is not None:
            object.__setattr__(self, "key", as_key(self.key, "the signing key"))
        problems = [
            *_at_least("port", self.port, 0, "0 picks any free port"),
            *_at_least("max_batch", self.max_batch, 1, "1 turns batching off"),
            *_at_least("max_queue", self.max_queue, 1, "requests allowed to wait"),
            *_at_least("workers", self.workers, 1, "server processes"),
            *_at_least("max_body_bytes", self.max_body_bytes, 64, "the largest request body"),
            *_at_least("max_header_bytes", self.max_header_bytes, 1024, "the largest request headers"),
            *_at_least("max_connections", self.max_connections, 1, "open connections per process"),
            *_at_least("restart_limit", self.restart_limit, 0, "worker restarts allowed in the window"),
            *_at_least("drift_window", self.drift_window, 1, "rows the running mean remembers"),
            *_at_least("drift_min_rows", self.drift_min_rows, 0, "rows seen before drift can be flagged"),
        ]
        if self.port > 65535:
            problems.append(f"port must be at most 65535, got {self.port}")
        if self.max_batch > MAX_BATCH_LIMIT:
            problems.append(f"max_batch must be at most {MAX_BATCH_LIMIT}, got {self.max_batch}")
        seconds = ("shutdown_timeout_s", "idle_timeout_s", "drain_s", "restart_window_s")
        for name in ("max_wait_ms", "model_delay_ms", "drift_threshold", "max_input_z", *seconds):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and value == value):
                problems.append(f"{name} must be a number >= 0, got {value!r}")
        if self.idle_timeout_s == 0:
            problems.append("idle_timeout_s must be above 0 (seconds a connection may take to send its headers)")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"log_level must be one of {', '.join(LOG_LEVELS)}; got {self.log_level!r}")
        if problems:
            raise ValueError("Cannot serve with these settings: " + "; ".join(problems) + ".")

    @property
    def batching(self) -> bool:
        """Whether requests share model calls (``max_batch`` > 1)."""
        return self.max_batch > 1

    def replace(self, **changes) -> Settings:
        """A copy with ``changes`` applied (and checked again)."""
        return dataclasses.replace(self, **changes)


def _at_least(name: str, value: object, lowest: int, meaning: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        return [f"{name} must be a whole number >= {lowest} ({meaning}), got {value!r}"]
    return []
