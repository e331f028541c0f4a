"""Dynamic batching: many small requests, few model calls, and every request gets exactly its own rows.

One model call for 64 rows costs little more than one for 1 row (the weights are
read once, the dispatch is paid once), so a server that waits a moment for
requests to pile up answers many more of them per second. The :class:`Batcher` is
one asyncio task between the request handlers and the model:

- a handler ``await submit(rows)``: its rows join a FIFO queue (a full queue raises
  :class:`QueueFull` at once, for a 503, rather than letting waits grow without bound);
- the task takes rows from the head of the queue until it has ``max_batch`` of them
  or the OLDEST waiting request has waited ``max_wait_s``, whichever comes first. A
  request with more rows than fit is split across consecutive batches; a batch never
  holds more than ``max_batch`` rows;
- the model call runs on one worker thread (``run_in_executor``), so the event loop
  keeps accepting and parsing requests while the model computes; those requests form
  the next batch. One call at a time: the model's own kernels already use the cores;
- each request's future gets its rows of the outputs, in its order, with how long
  it waited in the queue and how long the model calls it was part of took.

Grouping cannot change an answer when the model call itself is row-independent
(see ``Settings.fixed_shape``). The batcher knows nothing about models: ``compute``
is any function from a float32 ``(n, features)`` array to ``n`` rows of outputs,
which is how the tests drive it with a fake model.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already; answer 503 and ask the client to retry."""


class Closed(Exception):
    """The server is shutting down: requests already queued are answered, new ones are not taken."""


@dataclass
class Answer:
    """A request's outputs (one row per input row, in order) and where its time went, in seconds."""

    outputs: np.ndarray
    queue_s: float  # arrival in the queue to the start of its first model call
    compute_s: float  # total time of the model calls its rows were part of
    batch_rows: int  # rows in the largest batch it was part of
    batches: int  # model calls its rows were spread over


@dataclass
class _Pending:
    x: np.ndarray
    future: asyncio.Future
    enqueued: float
    taken: int = 0  # rows already handed to a batch
    parts: list = field(default_factory=list)
    queue_s: float | None = None
    compute_s: float = 0.0
    batch_rows: int = 0


@dataclass
class BatchStats:
    """What one model call was: handed to ``on_batch`` after every call (for metrics)."""

    rows: int
    requests: int
    compute_s: float
    queue_s: list[float]  # for each request that started here, how long it waited


class Batcher:
    """Groups submitted rows into batches of at most ``max_batch`` rows for ``compute`` (see the module doc)."""

    def __init__(
        self,
        compute: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.002,
        max_queue: int = 1024,
        on_batch: Callable[[BatchStats], None] | None = None,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(
                f"Batcher needs max_batch >= 1, max_queue >= 1 and max_wait_s >= 0; "
                f"got {max_batch}, {max_queue}, {max_wait_s}."
            )
        self.compute = compute
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: collections.deque[_Pending] = collections.deque()
        self._rows_waiting = 0
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlkit-model")

    @property
    def waiting_requests(self) -> int:
        """Requests whose rows are not all in a batch yet (what ``max_queue`` bounds)."""
        return len(self._queue)

    @property
    def waiting_rows(self) -> int:
        return self._rows_waiting

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mlkit-batcher")

    async def submit(self, x: np.ndarray) -> Answer:
        """Queue the float32 rows ``x`` (already validated) and wait for their outputs."""
        if self._closed:
            raise Closed("The server is shutting down and takes no new requests.")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(f"{len(self._queue)} requests are already waiting (max_queue is {self.max_queue}).")
        if len(x) == 0:
            raise ValueError("submit needs at least one row.")
        pending = _Pending(x, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._queue.append(pending)
        self._rows_waiting += len(x)
        self._idle.clear()
        self._arrived.set()
        return await pending.future

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no new requests, answer those queued (waiting at most ``timeout`` s), then end the task."""
        self._closed = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(Closed("The server shut down before this request reached the model."))
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._idle.set()
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._queue[0].enqueued + self.max_wait_s
            while self._rows_waiting < self.max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            x = batch[0][1] if len(batch) == 1 else np.concatenate([rows for _, rows in batch])
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self._executor, self.compute, x)
            except Exception as e:  # the model failed: every request in this batch hears why, the loop goes on
                for pending, _ in batch:
                    if not pending.future.done():
                        pending.future.set_exception(e)
                continue
            self._deliver(batch, out, started, time.perf_counter() - started)

    def _take(self) -> list[tuple[_Pending, np.ndarray]]:
        """Up to ``max_batch`` rows from the head of the queue; a request that does not fit is split."""
        batch: list[tuple[_Pending, np.ndarray]] = []
        room = self.max_batch
        while self._queue and room:
            pending = self._queue[0]
            if pending.future.done():  # its handler went away (cancelled): compute nothing for nobody
                self._queue.popleft()
                self._rows_waiting -= len(pending.x) - pending.taken
                continue
            k = min(room, len(pending.x) - pending.taken)
            batch.append((pending, pending.x[pending.taken : pending.taken + k]))
            pending.taken += k
            room -= k
            self._rows_waiting -= k
            if pending.taken == len(pending.x):
                self._queue.popleft()
        return batch

    def _deliver(self, batch: list[tuple[_Pending, np.ndarray]], out: np.ndarray, started: float, took: float) -> None:
        rows = sum(len(part) for _, part in batch)
        if len(out) != rows:
            error = RuntimeError(f"The model returned {len(out)} rows of outputs for a batch of {rows} rows.")
            for pending, _ in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        waits, start = [], 0
        for pending, part in batch:
            pending.parts.append(out[start : start + len(part)])
            start += len(part)
            pending.compute_s += took
            pending.batch_rows = max(pending.batch_rows, rows)
            if pending.queue_s is None:
                pending.queue_s = started - pending.enqueued
                waits.append(pending.queue_s)
            complete = pending.taken == len(pending.x) and sum(len(p) for p in pending.parts) == len(pending.x)
            if complete and not pending.future.done():
                outputs = pending.parts[0] if len(pending.parts) == 1 else np.concatenate(pending.parts)
                answer = Answer(outputs, pending.queue_s, pending.compute_s, pending.batch_rows, len(pending.parts))
                pending.future.set_result(answer)
        if self.on_batch is not None:
            self.on_batch(BatchStats(rows, len(batch), took, waits))
