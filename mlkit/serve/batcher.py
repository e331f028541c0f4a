"""Dynamic batching: many small requests, few model calls, and every request gets exactly its own rows.

One model call for 64 rows costs little more than one for 1 row (the weights are
read once, the dispatch is paid once), so a server that waits a moment for requests
to pile up answers many more of them per second. The :class:`Batcher` is one
asyncio task between the request handlers and the model:

- a handler ``await submit(rows)``: its rows join a FIFO queue (a full queue raises
  :class:`QueueFull` at once, for a 503, rather than letting waits grow without bound);
- the task takes rows from the head of the queue until it has ``max_batch`` of them,
  the OLDEST waiting request has waited ``max_wait_s``, or no other request can join
  (``may_join``: the server's open connections without a request in the queue, since
  an HTTP/1.1 connection carries one request at a time). A request with more rows
  than fit is split across consecutive batches;
- the model call runs on one worker thread, so the event loop keeps accepting and
  parsing the requests that form the next batch; a model whose calls take less than
  ``inline_below_s`` on average (a hand-off to a thread and back costs tens of
  microseconds, and up to the 5 ms switch interval while the loop is busy) is called
  on the event loop itself;
- each request's future gets its rows of the outputs, in order, with how long it
  waited in the queue and how long its model calls took.

``compute`` is any function from a float32 ``(n, features)`` array to ``n`` rows of
outputs (the tests drive it with a fake model); grouping cannot change an answer when
that call is row-independent (see ``Settings.fixed_shape``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_IDLE, _FOR_ANY, _FOR_FULL = 0, 1, 2  # what the batching task is waiting for: nothing, a first request, a full batch
ESTIMATE_WEIGHT = 0.2  # of the newest call in the running mean of model-call seconds


class QueueFull(Exception):
    """The queue holds ``max_queue`` requests already; answer 503 and ask the client to retry."""


class Closed(Exception):
    """The server is shutting down: requests already queued are answered, new ones are not taken."""


@dataclass(slots=True)
class Answer:
    """A request's outputs (one row per input row, in order) and where its time went, in seconds."""

    outputs: np.ndarray
    queue_s: float  # arrival in the queue to the start of its first model call
    compute_s: float  # total time of the model calls its rows were part of
    batch_rows: int  # rows in the largest batch it was part of
    batches: int  # model calls its rows were spread over


class _Pending:
    """One submitted request while its rows wait for (or are in) model calls."""

    __slots__ = ("batch_rows", "compute_s", "enqueued", "future", "n", "parts", "queue_s", "taken", "x")

    def __init__(self, x: np.ndarray, future: asyncio.Future, enqueued: float):
        self.x = x
        self.n = len(x)
        self.future = future
        self.enqueued = enqueued
        self.taken = 0  # rows already handed to a batch
        self.parts: list[np.ndarray] = []
        self.queue_s: float | None = None
        self.compute_s = 0.0
        self.batch_rows = 0


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
        inline_below_s: float = 0.0,
        may_join: Callable[[], int] | None = None,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0 or inline_below_s < 0:
            raise ValueError(
                f"Batcher needs max_batch >= 1, max_queue >= 1, max_wait_s >= 0 and inline_below_s >= 0; "
                f"got {max_batch}, {max_queue}, {max_wait_s}, {inline_below_s}."
            )
        self.compute = compute
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.inline_below_s = inline_below_s
        self.may_join = may_join
        self.compute_estimate_s: float | None = None  # running mean of model-call seconds; None before the first
        self.inline_calls = 0  # model calls made on the event loop (the rest went to the thread)
        self._queue: collections.deque[_Pending] = collections.deque()
        self._rows_waiting = 0
        self._waiting_for = _IDLE
        self._wakeup: asyncio.Future | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="mlkit-batcher")

    async def submit(self, x: np.ndarray) -> Answer:
        """Queue the float32 rows ``x`` (already validated) and wait for their outputs."""
        if self._closed:
            raise Closed("The server is shutting down and takes no new requests.")
        queue = self._queue
        if len(queue) >= self.max_queue:
            raise QueueFull(f"Too busy: {len(queue)} requests are already waiting (max_queue is {self.max_queue}).")
        if len(x) == 0:
            raise ValueError("submit needs at least one row.")
        loop = self._loop or asyncio.get_running_loop()
        pending = _Pending(x, loop.create_future(), time.perf_counter())
        queue.append(pending)
        self._rows_waiting += pending.n
        self._idle.clear()
        waiting_for = self._waiting_for
        if waiting_for == _FOR_ANY or (
            waiting_for == _FOR_FULL and (self._rows_waiting >= self.max_batch or self._alone())
        ):
            self._wake()
        return await pending.future

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no new requests, answer those queued (waiting at most ``timeout`` s), then end the task."""
        self._closed = True
        self._wake()  # a batch waiting to fill goes now
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

    def _alone(self) -> bool:
        """Whether no other request can join the batch now (``may_join`` says 0): waiting longer cannot fill it."""
        may_join = self.may_join
        return may_join is not None and may_join() <= 0

    def _wake(self) -> None:
        self._waiting_for = _IDLE
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _wait(self, waiting_for: int, seconds: float | None = None) -> None:
        """Sleep until ``_wake`` (an arrival, a full batch, a stop) or ``seconds`` pass."""
        loop = asyncio.get_running_loop()
        self._wakeup = wakeup = loop.create_future()
        self._waiting_for = waiting_for
        timer = None if seconds is None else loop.call_later(seconds, self._wake)
        try:
            await wakeup
        finally:
            self._waiting_for = _IDLE
            self._wakeup = None
            if timer is not None:
                timer.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._idle.set()
                await self._wait(_FOR_ANY)
                continue
            if self._rows_waiting < self.max_batch and not self._closed and not self._alone():
                left = self._queue[0].enqueued + self.max_wait_s - time.perf_counter()
                if left > 0:
                    await self._wait(_FOR_FULL, left)
            batch = self._take()
            if not batch:
                continue
            x = batch[0][1] if len(batch) == 1 else np.concatenate([rows for _, rows in batch])
            estimate = self.compute_estimate_s
            inline = estimate is not None and estimate < self.inline_below_s
            started = time.perf_counter()
            try:
                if inline:
                    out = self.compute(x)
                else:
                    out = await loop.run_in_executor(self._executor, self.compute, x)
            except Exception as e:  # the model failed: every request in this batch hears why, the loop goes on
                for pending, _ in batch:
                    if not pending.future.done():
                        pending.future.set_exception(e)
                continue
            took = time.perf_counter() - started
            self.compute_estimate_s = took if estimate is None else estimate + ESTIMATE_WEIGHT * (took - estimate)
            self._deliver(batch, out, started, took)
            if inline:
                self.inline_calls += 1
                await asyncio.sleep(0)  # let the answered handlers reply, and new requests in, before the next batch

    def _take(self) -> list[tuple[_Pending, np.ndarray]]:
        """Up to ``max_batch`` rows from the head of the queue; a request that does not fit is split."""
        batch: list[tuple[_Pending, np.ndarray]] = []
        room = self.max_batch
        queue = self._queue
        while queue and room:
            pending = queue[0]
            if pending.future.done():  # its handler went away (cancelled): compute nothing for nobody
                queue.popleft()
                self._rows_waiting -= pending.n - pending.taken
                continue
            k = pending.n - pending.taken
            if k <= room and not pending.taken:
                batch.append((pending, pending.x))  # the common case: the whole request fits
            else:
                k = min(room, k)
                batch.append((pending, pending.x[pending.taken : pending.taken + k]))
            pending.taken += k
            room -= k
            self._rows_waiting -= k
            if pending.taken == pending.n:
                queue.popleft()
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
            size = len(part)
            if pending.queue_s is None:
                pending.queue_s = started - pending.enqueued
                waits.append(pending.queue_s)
            if size == pending.n:  # all its rows in this one call
                if not pending.future.done():
                    outputs = out[start : start + size]
                    pending.future.set_result(Answer(outputs, pending.queue_s, took, rows, 1))
                start += size
                continue
            pending.parts.append(out[start : start + size])
            start += size
            pending.compute_s += took
            pending.batch_rows = max(pending.batch_rows, rows)
            complete = pending.taken == pending.n and sum(len(p) for p in pending.parts) == pending.n
            if complete and not pending.future.done():
                outputs = np.concatenate(pending.parts)
                answer = Answer(outputs, pending.queue_s, pending.compute_s, pending.batch_rows, len(pending.parts))
                pending.future.set_result(answer)
        if self.on_batch is not None:
            self.on_batch(BatchStats(rows, len(batch), took, waits))
