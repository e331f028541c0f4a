"""uvicorn's HTTP protocol with the limits it lacks against clients that never finish a request's headers.

uvicorn closes a keep-alive connection that stays silent for ``timeout_keep_alive``, but any byte
cancels that timer, a connection that never sends anything has none, and the headers may grow
without bound (httptools buffers them whole). So 200 connections that say nothing, or a few that
send a header byte a second, stay open forever, and enough of them exhaust the open-file limit,
after which every new client, ``/health`` included, is refused. :class:`GuardedProtocol` adds three
bounds that a request's *headers* (not its body, which :func:`mlkit.serve.app.read_body` bounds, nor
the time to answer) must keep:

- **time**: they are complete within ``idle_timeout_s`` of the connection opening or of the previous
  answer on it, else the connection is closed (408 when part of a request had arrived);
- **size**: at most ``max_header_bytes`` arrive before they end, else 431 and close;
- **count**: past ``max_connections`` open connections, a new one closes the one that has waited
  longest for its headers (an answer being worked on is never cut); with none such, the new one
  hears 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


class GuardedProtocol(HttpToolsProtocol):
    """:class:`~uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` with the bounds of this module; the
    bounds are keyword arguments (the runner hands uvicorn a ``functools.partial`` of this class)."""

    def __init__(
        self,
        *args: Any,
        idle_timeout_s: float,
        max_header_bytes: int,
        max_connections: int,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.idle_timeout_s, self.max_header_bytes = idle_timeout_s, max_header_bytes
        self.max_connections = max_connections
        self.awaiting = False  # True while it waits for a request's headers (and no answer is being worked on)
        self.awaiting_since = 0.0
        self.header_bytes = 0
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.awaiting:
            self.header_bytes += len(data)
        super().data_received(data)
        if self.awaiting and self.header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self.refuse(431, f"The request's headers are over the limit of {self.max_header_bytes} bytes.")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # uvicorn now waits for the next request (none pipelined)
            self._await_headers()

    def _await_headers(self) -> None:
        self._disarm()
        self.awaiting, self.awaiting_since, self.header_bytes = True, self.loop.time(), 0
        self.deadline = self.loop.call_later(self.idle_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        self.awaiting = False
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _too_slow(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.header_bytes:  # part of a request arrived: say why it ends
            self.refuse(408, f"The request's headers did not all arrive within {self.idle_timeout_s:g} s.")
        else:
            self.transport.close()

    def _make_room(self) -> None:
        """Close the connection that has waited longest for its headers (this one if it is the only such)."""
        waiting = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.awaiting and c is not self]
        if waiting:
            oldest = min(waiting, key=lambda c: c.awaiting_since)
            oldest._disarm()
            oldest.transport.close()
        else:
            self.refuse(503, f"The server has {self.max_connections} connections open, all busy. Retry in a moment.")

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error and close, outside the application (no request was read)."""
        self._disarm()
        body = b'{"error": "' + message.replace('"', "'").encode() + b'"}'
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n"]
        head += [b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(head))
        self.transport.close()
