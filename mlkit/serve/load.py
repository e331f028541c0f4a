"""A load generator for the server: ``python -m mlkit load URL`` or :func:`run`.

Two ways to load a server, and they answer different questions:

- **closed loop** (``concurrency=C``): C clients, each sending its next request as
  soon as its last one is answered. The server sets the pace; this measures the
  throughput C busy clients get and their latency.
- **open loop** (``rate=R``): requests arrive on a clock, R per second (evenly
  spaced, or ``poisson=True`` for random arrivals at that rate), whether or not
  earlier ones have been answered, as independent users do. A slow server does not
  slow the arrivals, so queues and latency grow as they would in production. Each
  latency is measured from the moment the request was DUE, not from when the
  client got round to sending it: a client that falls behind then shows up as
  latency instead of hiding it ("coordinated omission"). ``late_ms_p99`` says how
  far behind the clock the sends were, so an overloaded client is visible.

Both stop after ``duration`` seconds or ``max_requests`` requests, whichever comes
first, then wait (at most ``timeout``) for answers still on the way. The result
counts every request exactly once (``sent == ok + sum(errors.values())``) and, from
each answer's ``Server-Timing`` header, splits the server's time into queue and
compute.

The client is aiohttp's, a maintained asyncio HTTP client. Why not httpx, which the
rest of mlkit uses: a load generator must cost far less per request than the server it
measures, or it measures itself, and on a 2-core machine every microsecond the client
spends is taken from the server. Measured here at 32 connections against a server that
does nothing: httpx's async client spent about 2.5 ms of CPU per request (about 400
requests/s from a whole core, less than mlkit's server answers), aiohttp's about 70 µs
(about 14,000 requests/s). At 10,000 requests/s aiohttp still holds most of a core and
slows the server it shares the machine with, so on a small machine the numbers are a
floor for the server: ``client_cpu_s`` says how busy the client was, and near 100% of a
core it, not the server, may be what the numbers show. A faster generator is another
process (``wrk``, or this one on another machine), not a hand-written HTTP client.

An async client, because one Python thread can then hold hundreds of requests in
flight: an open loop needs a new request to go out on time while earlier ones are
still waiting, which a blocking client (one request per thread) cannot do without a
thread per request. It keeps connections alive (as real clients do), opens at most
``max_connections``, and bounds every wait with a timeout. It sends only to the
``url`` given, never following a redirect anywhere else; this machine's tests point
it at 127.0.0.1. Transport problems are counted by name: ``"timeout"``,
``"ConnectError"`` (nothing listening), ``"ServerDisconnected"`` (the connection closed
before the answer was complete), ``"ProtocolError"`` (an answer that is not HTTP);
with ``client="aiohttp"``, other problems by aiohttp's exception name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

MAX_BODIES = 256  # distinct request bodies, encoded before the clock starts


@dataclass
class LoadResult:
    """What one load run saw. Latencies are of successful (200) requests, in milliseconds."""

    url: str
    mode: str  # "open" or "closed"
    target: float  # requests per second (open) or concurrent clients (closed)
    rows_per_request: int
    duration_s: float  # first send to last answer
    sent: int
    ok: int
    errors: dict[str, int]  # by status code ("503") or transport problem ("timeout", "ConnectError", ...)
    latency_ms: np.ndarray = field(repr=False)
    queue_ms: np.ndarray = field(repr=False)  # from Server-Timing, per successful request
    compute_ms: np.ndarray = field(repr=False)
    batch_rows: np.ndarray = field(repr=False)
    late_ms: np.ndarray = field(repr=False)  # open loop: how long after its due time each request went out
    client_cpu_s: float = 0.0  # CPU time this process spent during the run: near duration_s, the client is the limit

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def percentile(self, q: float, of: str = "latency_ms") -> float:
        values = getattr(self, of)
        return float(np.percentile(values, q)) if len(values) else float("nan")

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    def to_dict(self) -> dict:
        """Plain numbers, for JSON."""
        mean = lambda a: float(np.mean(a)) if len(a) else None
        return {
            "url": self.url,
            "mode": self.mode,
            "target": self.target,
            "rows_per_request": self.rows_per_request,
            "duration_s": self.duration_s,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "throughput_rps": self.throughput,
            "rows_per_s": self.throughput * self.rows_per_request,
            "latency_ms": {"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": _max(self.latency_ms)},
            "server_queue_ms_mean": mean(self.queue_ms),
            "server_compute_ms_mean": mean(self.compute_ms),
            "batch_rows_mean": mean(self.batch_rows),
            "late_ms_p99": self.percentile(99, "late_ms") if len(self.late_ms) else None,
            "client_cpu_per_s": self.client_cpu_s / self.duration_s if self.duration_s > 0 else None,
        }

    def __str__(self) -> str:
        d = self.to_dict()
        target = f"{self.target:g} requests/s" if self.mode == "open" else f"{self.target:g} concurrent clients"
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        p = self.p50, self.p90, self.p99, _max(self.latency_ms)
        lines = [
            f"{self.mode} loop, {target}, {self.rows_per_request} row(s) per request, against {self.url}",
            f"  sent {self.sent} in {self.duration_s:.2f} s: {self.ok} ok, errors {errors}",
            f"  throughput {d['throughput_rps']:.1f} requests/s ({d['rows_per_s']:.1f} rows/s)",
            f"  latency ms  p50 {p[0]:.2f}  p90 {p[1]:.2f}  p99 {p[2]:.2f}  max {p[3]:.2f}",
        ]
        if len(self.queue_ms):
            lines.append(
                f"  server ms   queue {d['server_queue_ms_mean']:.3f}  compute {d['server_compute_ms_mean']:.3f} "
                f"(means; rows per model call {d['batch_rows_mean']:.1f})"
            )
        if d["late_ms_p99"] is not None:
            lines.append(f"  sends ran behind the clock by {d['late_ms_p99']:.2f} ms (p99)")
        if d["client_cpu_per_s"] is not None:
            busy = d["client_cpu_per_s"]
            note = ": the client itself may be what limits these numbers" if busy > 0.8 else ""
            lines.append(f"  the load generator kept {busy:.0%} of a core busy{note}")
        return "\n".join(lines)


def run(url: str, **options: Any) -> LoadResult:
    """Load ``url`` and return a :class:`LoadResult`; the options are those of :func:`run_async`.

    Works from a script and from a notebook (whose event loop is already running: the run
    then gets its own loop on a helper thread). The loop is uvloop's when it is installed.
    """
    if not _loop_running():
        return _run_loop(run_async(url, **options))
    box: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            box["result"] = _run_loop(run_async(url, **options))
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=in_thread, name="mlkit-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


async def run_async(
    url: str,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    duration: float = 5.0,
    max_requests: int = 100_000,
    rows: np.ndarray | Sequence[str] | None = None,
    rows_per_request: int = 1,
    poisson: bool = False,
    timeout: float = 10.0,
    max_connections: int = 256,
    seed: int = 0,
    client: str = "aiohttp",
) -> LoadResult:
    """POST to ``url``/predict: open loop at ``rate`` requests per second, or closed loop with ``concurrency`` clients.

    ``rows`` (n, features), or texts for a text model, are sent in turn, ``rows_per_request`` at a time; by default,
    random rows around the training statistics the server's /metadata reports.
    ``client`` names the HTTP client library; ``"aiohttp"`` is the one there is.
    """
    base = _check_url(url)
    if (rate is None) == (concurrency is None):
        raise ValueError("Give exactly one of rate= (open loop, requests per second) or concurrency= (closed loop).")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 requests per second, got {rate}.")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be >= 1 client, got {concurrency}.")
    if not duration > 0 or max_requests < 1 or rows_per_request < 1:
        raise ValueError(
            f"Expected duration > 0 s, max_requests >= 1 and rows_per_request >= 1; "
            f"got {duration}, {max_requests}, {rows_per_request}."
        )
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}; got {client!r}.")
    if max_connections < 1:
        raise ValueError(f"max_connections must be >= 1, got {max_connections}.")
    sender = CLIENTS[client](base, max_connections, timeout)
    try:
        if rows is None:
            given = await _default_rows(sender, seed)
        else:
            given = _as_rows(rows)
            await _check_fits(sender, given)
        bodies = _bodies(given, rows_per_request)
        record = _Record()
        started, cpu = time.perf_counter(), time.process_time()
        if rate is not None:
            await _open_loop(sender, bodies, record, rate, duration, max_requests, poisson, seed)
        else:
            assert concurrency is not None
            await _closed_loop(sender, bodies, record, concurrency, duration, max_requests)
        took = time.perf_counter() - started
        record.cpu = time.process_time() - cpu
    finally:
        await sender.close()
    return record.result(
        base, "open" if rate is not None else "closed", rate or concurrency or 0, rows_per_request, took
    )


class _Record:
    def __init__(self) -> None:
        self.sent = 0
        self.errors: dict[str, int] = {}
        self.latency: list[float] = []
        self.queue: list[float] = []
        self.compute: list[float] = []
        self.batch: list[float] = []
        self.late: list[float] = []
        self.cpu = 0.0

    def result(self, url: str, mode: str, target: float, rows: int, took: float) -> LoadResult:
        array = lambda values: np.asarray(values, float)
        return LoadResult(
            url,
            mode,
            float(target),
            rows,
            took,
            self.sent,
            len(self.latency),
            self.errors,
            array(self.latency),
            array(self.queue),
            array(self.compute),
            array(self.batch),
            array(self.late) if mode == "open" else array([]),
            self.cpu,
        )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_loop(coroutine: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """Run ``coroutine`` to its end on a new event loop: uvloop's if installed (cheaper per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


class Failed(Exception):
    """A request that got no HTTP answer; ``name`` is how :class:`LoadResult` counts it."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class AiohttpClient:
    """Requests through aiohttp's client: one session, kept-alive connections, a timeout on every request."""

    def __init__(self, url: str, max_connections: int, timeout: float):
        import aiohttp

        self.aiohttp = aiohttp
        self.url = url
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=timeout),
            trust_env=False,
        )

    async def send(self, data: bytes) -> Reply:
        return await self._request("POST", self.url, data)

    async def get_json(self, path: str) -> Any:
        reply = await self._request("GET", self.url.removesuffix("/predict") + path, None)
        if reply.status != 200:
            raise Failed(str(reply.status), f"GET {path} answered {reply.status}")
        return json.loads(reply.body)

    async def close(self) -> None:
        await self.session.close()

    async def _request(self, method: str, url: str, data: bytes | None) -> Reply:
        try:
            async with self.session.request(
                method, url, data=data, headers=JSON_HEADERS, allow_redirects=False
            ) as response:
                body = await response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
                return Reply(response.status, headers, body)
        except (asyncio.TimeoutError, TimeoutError) as e:  # aiohttp's own timeouts are TimeoutErrors too
            raise Failed("timeout") from e
        except self.aiohttp.ClientError as e:
            name = type(e).__name__
            if isinstance(e, self.aiohttp.ClientConnectorError):
                name = "ConnectError"  # nothing listening
            elif isinstance(e, self.aiohttp.ServerDisconnectedError):
                name = "ServerDisconnected"  # the connection closed before the answer was complete
            raise Failed(name, str(e)) from e


JSON_HEADERS = {"content-type": "application/json"}
CLIENTS: dict[str, type[AiohttpClient]] = {"aiohttp": AiohttpClient}


async def _send(client: AiohttpClient, data: bytes, record: _Record, due: float) -> None:
    record.sent += 1
    try:
        reply = await client.send(data)
    except Failed as e:
        record.errors[e.name] = record.errors.get(e.name, 0) + 1
        return
    if reply.status != 200:
        key = str(reply.status)
        record.errors[key] = record.errors.get(key, 0) + 1
        return
    record.latency.append((time.perf_counter() - due) * 1000)
    headers = reply.headers
    timing = _server_timing(headers.get("server-timing", ""))
    if "queue" in timing and "compute" in timing:
        record.queue.append(timing["queue"])
        record.compute.append(timing["compute"])
    batch = headers.get("x-batch-rows", "")
    if batch.isdigit():
        record.batch.append(int(batch))


async def _open_loop(
    client: AiohttpClient,
    bodies: list[bytes],
    record: _Record,
    rate: float,
    duration: float,
    max_requests: int,
    poisson: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    if poisson:
        due_offsets = np.concatenate([[0.0], np.cumsum(rng.exponential(1 / rate, max_requests - 1))])
    else:
        due_offsets = np.arange(max_requests) / rate
    start = time.perf_counter()
    tasks = []
    for i, offset in enumerate(due_offsets):
        if offset >= duration:
            break
        due = start + float(offset)
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        record.late.append(max(0.0, time.perf_counter() - due) * 1000)
        tasks.append(asyncio.create_task(_send(client, bodies[i % len(bodies)], record, due)))
    await asyncio.gather(*tasks)


async def _closed_loop(
    client: AiohttpClient,
    bodies: list[bytes],
    record: _Record,
    concurrency: int,
    duration: float,
    max_requests: int,
) -> None:
    end = time.perf_counter() + duration
    counter = iter(range(max_requests))

    async def one_client() -> None:
        for i in counter:
            if time.perf_counter() >= end:
                return
            await _send(client, bodies[i % len(bodies)], record, time.perf_counter())

    await asyncio.gather(*(one_client() for _ in range(concurrency)))


async def _default_rows(client: AiohttpClient, seed: int) -> np.ndarray:
    """Random rows around the training mean (± the training scale) that the server's /metadata reports."""
    try:
        meta = await client.get_json("/metadata")
    except Failed as e:
        raise ConnectionError(
            f"No mlkit server answered GET {client.url.removesuffix('/predict')}/metadata ({e}); "
            f"start one with `python -m mlkit serve DIR`, or pass the rows to send."
        ) from e
    if meta.get("input", {}).get("dtype") == "string":
        raise ValueError(
            "This server reads texts, and /metadata holds no texts to send: pass them "
            "(rows=[...] here, or --data reviews / --data FILE.txt on the command line)."
        )
    rng = np.random.default_rng(seed)
    pre = meta.get("preprocessor")
    n = int(meta["num_features"])
    if pre is None:
        return rng.standard_normal((MAX_BODIES, n)).astype(np.float32)
    mean, scale = np.asarray(pre["mean"], np.float32), np.asarray(pre["scale"], np.float32)
    return (mean + scale * rng.standard_normal((MAX_BODIES, n))).astype(np.float32)


async def _check_fits(client: AiohttpClient, rows: np.ndarray) -> None:
    """A ValueError, before any load, when an mlkit server's /metadata says ``rows`` cannot be answered (texts to a
    model of numbers, numbers to a text model, or the wrong width); a server without /metadata is not checked."""
    try:
        meta = await client.get_json("/metadata")
        texts, width = meta["input"]["dtype"] == "string", int(meta["num_features"])
    except (Failed, ValueError, KeyError, TypeError):
        return
    if rows.dtype.kind == "U" and not texts:
        raise ValueError(f"The server's model reads rows of {width} numbers; these rows are texts. Pass numbers.")
    if rows.dtype.kind != "U" and texts:
        raise ValueError("The server's model reads texts; these rows are numbers. Pass texts (e.g. --data reviews).")
    if not texts and rows.ndim == 2 and rows.shape[1] != width:
        raise ValueError(f"The server's model reads rows of {width} numbers; these rows have {rows.shape[1]}.")


def _as_rows(rows) -> np.ndarray:
    """``rows`` as float32 rows of numbers, or as a 1-D array of texts (for a text model)."""
    if not isinstance(rows, np.ndarray) and len(rows) and all(isinstance(r, str) for r in rows):
        return np.asarray(rows, str)
    rows = np.asarray(rows)
    return rows if rows.dtype.kind == "U" else rows.astype(np.float32)


def _bodies(rows: np.ndarray, per_request: int) -> list[bytes]:
    texts = rows.dtype.kind == "U"
    if rows.ndim != (1 if texts else 2) or not len(rows):
        what = "1-D array of texts" if texts else "2-D array (n, features)"
        raise ValueError(f"rows must be a non-empty {what}; got shape {rows.shape}.")
    count = max(1, min(MAX_BODIES, len(rows) // per_request or 1))
    take = lambda i: np.take(rows, range(i * per_request, (i + 1) * per_request), axis=0, mode="wrap")
    return [json.dumps({"inputs": take(i).tolist()}).encode() for i in range(count)]


def _server_timing(header: str) -> dict[str, float]:
    """``queue;dur=0.8, compute;dur=0.2`` as {"queue": 0.8, "compute": 0.2} (milliseconds)."""
    found = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                with contextlib.suppress(ValueError):
                    found[name] = float(value)
    return found


def _check_url(url: str) -> str:
    """``url``/predict, after checking ``url`` is an http(s) server address (the only place requests go)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"Expected the server's address, like http://127.0.0.1:8000; got {url!r}.")
    base = url.rstrip("/")
    return base if base.endswith("/predict") else base + "/predict"


def _max(values: np.ndarray) -> float:
    return float(values.max()) if len(values) else float("nan")
