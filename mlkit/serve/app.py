"""The HTTP interface: a FastAPI application around one :class:`~mlkit.serve.model.ServedModel`.

========================  =====================================================================
``POST /predict``         ``{"inputs": [[...], ...]}``, one row of raw features per example →
                          ``{"labels": [...], "probabilities": [[...], ...]}`` (classifier) or
                          ``{"values": [...]}`` (regression); ``Server-Timing`` says how long the
                          request queued and how long its model calls took, ``X-Batch-Rows`` how
                          many rows shared its (largest) model call; a text model (lesson 15)
                          takes ``{"inputs": ["a text", ...]}`` and tokenizes each text with the
                          vocabulary its artifact carries
``GET /health``           200 while the model is loaded and requests are taken, 503 when shutting down
``GET /metadata``         task, labels, input width, the batching settings, versions
``GET /metrics``          Prometheus text format (see :mod:`mlkit.serve.metrics`)
``GET /drift``            the crude drift watch (see :mod:`mlkit.serve.drift`)
``POST /admin/reload``    optional ``{"path": ...}``: load, check, then swap in a new artifact
``POST /admin/drift/reset``  forget the rows the drift watch has seen
``GET /docs``             the interactive OpenAPI page (``/openapi.json`` is the schema)
========================  =====================================================================

Every error is JSON ``{"error": "..."}`` that says what was expected: malformed
JSON is 400, a body over ``max_body_bytes`` 413, well-formed JSON that is not
rows of numbers of the right width 422 (with the predictor's own ``validate``
message), a full queue 503 with ``Retry-After``. The body is read as JSON whatever
its Content-Type says, so ``curl -d '{"inputs": ...}'`` works as it is. Python's ``json`` reads the
non-standard tokens ``NaN`` and ``Infinity`` (and ``1e999`` is infinite); rather
than a parse error they get the predictor's own answer for non-finite input, a
422 that names the rows. The admin routes answer only clients on the loopback
interface (127.0.0.1 or ::1), whatever ``--host`` the server listens on.

For a small model, most of a request's time is the server's own Python, so
``POST /predict`` takes a short way: the application (a FastAPI subclass) answers
it as a plain ASGI handler before FastAPI's routing, dependency and middleware
layers, reads the body with orjson (falling back to Python's ``json`` for what
orjson refuses, so the tokens above and the error messages stay as described),
writes the answer with orjson (the same numbers as Python's ``json`` writes, as
shortest round-trip float64 text), and counts it in the metrics itself. The route
is still declared to FastAPI, so ``/docs`` and ``/openapi.json`` describe it; every
other route goes through FastAPI as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import ipaddress
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from mlkit.serve.batcher import Batcher, BatchStats, Closed, QueueFull
from mlkit.serve.drift import DriftWatch
from mlkit.serve.metrics import CONTENT_TYPE, Metrics
from mlkit.serve.model import Incompatible, ServedModel, check_compatible, load_for
from mlkit.serve.settings import Settings

DRAIN_BYTES = 16_000_000  # an oversized body up to this size is read and dropped before the 413
DISCONNECTED = 499  # the status counted for a client that went away before its request was read
BODY_TIMEOUT_S = 5.0  # seconds a request's body may take to arrive, once its headers have
BIG_BODY = 100_000  # bodies larger than this are parsed and answered on a thread, off the event loop
INLINE_BELOW_S = 0.001  # model calls shorter than this (on average) run on the event loop, longer ones on a thread
ROUTES = ("/predict", "/health", "/metadata", "/metrics", "/drift", "/admin/reload", "/admin/drift/reset")


class State:
    """Everything one server process holds: the model being served, the batcher, the drift watch, the metrics."""

    def __init__(self, settings: Settings, model: ServedModel, workers: int):
        self.settings = settings
        self.model = model
        self.workers = workers
        self.metrics = Metrics()
        self.metrics.loaded.set(model.loaded_at)
        self.drift = DriftWatch(
            model.predictor.preprocessor,
            window=settings.drift_window,
            threshold=settings.drift_threshold,
            min_rows=settings.drift_min_rows,
        )
        self.batcher = Batcher(
            self._compute,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=self._record,
            # a model call cheaper than a hand-off to the model thread is made on the event loop; never with
            # model_delay_ms, whose sleep must not stop the loop
            inline_below_s=0.0 if settings.model_delay_ms else INLINE_BELOW_S,
            may_join=self._may_join,
        )
        self.open_connections: Callable[[], int] | None = None  # set by the runner: uvicorn's open connections
        self.settled = 0  # /predict requests in the batcher's hands, or answered but not yet replied to
        self.reload_lock = asyncio.Lock()
        self.reloads = 0

    def _may_join(self) -> int:
        """How many more requests could join a batch now: open connections without a request in the batcher's
        hands (HTTP/1.1 carries one request at a time on a connection); unknown (no runner): 1."""
        connections = self.open_connections
        return 1 if connections is None else connections() - self.settled

    def _record(self, stats: BatchStats) -> None:
        self.metrics.batch(stats)
        self.metrics.queue(self.batcher.waiting_requests, self.batcher.waiting_rows)

    def _compute(self, x: np.ndarray) -> np.ndarray:
        """One model call, on the batcher's thread; the model is read once, so a reload never splits a batch."""
        out = self.model.outputs(x)
        self.drift.update(x)
        self.metrics.drift(self.drift)
        return out


class ServingApp(FastAPI):
    """FastAPI, with ``POST /predict`` answered before FastAPI's own layers (see the module doc)."""

    predict_handler: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.predict_handler
        if (
            handler is not None
            and scope["type"] == "http"
            and scope["path"] == "/predict"
            and scope["method"] == "POST"
        ):
            await handler(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's files from the ``swagger-ui-bundle`` package instead of a CDN: a classroom
    or a server without internet still gets the page where a learner tries ``/predict``."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · try it",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # else the page asks an online validator about the schema
        )


def create_app(settings: Settings, model: ServedModel | None = None, *, workers: int = 1) -> FastAPI:
    """The application serving ``settings.path`` (or the already loaded ``model``), for one process of ``workers``."""
    if model is None:
        model = load_for(settings)
    state = State(settings, model, workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        yield
        await state.batcher.stop(timeout=settings.shutdown_timeout_s)

    app = ServingApp(
        title="mlkit serve",
        version=importlib.metadata.version("mlkit"),
        summary=f"A frozen {model.task} model ({model.inputs}) from {model.path.name}.",
        lifespan=lifespan,
        docs_url=None,  # served below from the packaged Swagger UI, so /docs works with no internet
    )
    _offline_docs(app)
    app.state.mlkit = state
    app.add_middleware(CountRequests, metrics=state.metrics)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    answer_model = ClassifierAnswer if model.task == "classification" else RegressionAnswer
    texts = model.takes_texts
    example = {"inputs": ["I want my money back"] if texts else [[0.0] * model.num_features]}

    async def answer(body: bytes) -> tuple[bytes, str, int]:
        """The JSON answer to a /predict body, its Server-Timing and its batch rows; or an HTTPException."""
        current = state.model
        big = len(body) > BIG_BODY
        x = await asyncio.to_thread(parse_inputs, body, current) if big else parse_inputs(body, current)
        state.settled += 1
        try:
            answer = await state.batcher.submit(x)
        except QueueFull as e:
            raise HTTPException(503, f"Too busy: {e} Retry in a moment.", headers={"Retry-After": "1"}) from e
        except Closed as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from e
        finally:
            state.settled -= 1
        content = state.model.answer(answer.outputs)
        data = await asyncio.to_thread(_dumps, content) if big else _dumps(content)
        timing = f"queue;dur={answer.queue_s * 1000:.3f}, compute;dur={answer.compute_s * 1000:.3f}"
        return data, timing, answer.batch_rows

    @app.post(
        "/predict",
        summary="Answer for each row of raw features",
        response_model=answer_model,
        responses={400: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": (TextRequest if texts else PredictRequest).model_json_schema(),
                        "example": example,
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        """What FastAPI would run for POST /predict; ``fast_predict`` answers it first, the same way."""
        data, timing, rows = await answer(await read_body(request, settings.max_body_bytes))
        headers = {"Server-Timing": timing, "X-Batch-Rows": str(rows)}
        return Response(data, media_type="application/json", headers=headers)

    async def fast_predict(scope: Scope, receive: Receive, send: Send) -> None:
        """POST /predict as a plain ASGI handler: the same answers, errors and metrics as the FastAPI route."""
        started = time.perf_counter()
        status, replied = 500, False
        try:
            data, timing, rows = await answer(await receive_body(scope, receive, settings.max_body_bytes))
            status, replied = 200, True
            headers = [
                (b"content-length", str(len(data)).encode()),
                (b"content-type", b"application/json"),
                (b"server-timing", timing.encode()),
                (b"x-batch-rows", str(rows).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})
        except HTTPException as e:
            status = e.status_code
            await _send_json(send, status, {"error": e.detail}, e.headers)
        except ClientDisconnect:
            status = DISCONNECTED
        except Exception as e:
            if not replied:
                await _send_json(send, 500, _internal_problem(e))
        finally:
            state.metrics.request("/predict", status, time.perf_counter() - started)

    app.predict_handler = fast_predict

    @app.get("/health", summary="200 while the model is loaded and requests are taken")
    async def health() -> JSONResponse:
        closing = state.batcher.closed
        return JSONResponse(
            {
                "status": "shutting down" if closing else "ok",
                "artifact": str(state.model.path),
                "task": state.model.task,
                "pid": os.getpid(),
                "queue_requests": state.batcher.waiting_requests,
            },
            status_code=503 if closing else 200,
        )

    @app.get("/metadata", summary="What the model takes and answers, and how the server batches")
    async def metadata() -> dict:
        return {
            **state.model.describe(),
            "server": {
                "max_batch": settings.max_batch,
                "batching": settings.batching,
                "max_wait_ms": settings.max_wait_ms,
                "max_queue": settings.max_queue,
                "max_body_bytes": settings.max_body_bytes,
                "fixed_shape": settings.fixed_shape,
                "workers": workers,
                "pid": os.getpid(),
                "reloads": state.reloads,
            },
        }

    @app.get("/metrics", summary="Prometheus text format", response_class=Response)
    async def metrics() -> Response:
        state.metrics.queue(state.batcher.waiting_requests, state.batcher.waiting_rows)
        state.metrics.drift(state.drift, force=True)
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/drift", summary="Crude drift watch: served input means against the training statistics")
    async def drift() -> dict:
        return {**state.drift.report(), "pid": os.getpid()}

    @app.post("/admin/drift/reset", summary="Forget the rows the drift watch has seen (loopback clients only)")
    async def drift_reset(request: Request) -> dict:
        _loopback_only(request)
        _one_worker(workers, "a drift reset")
        state.drift.reset()
        return {"reset": True, "pid": os.getpid()}

    @app.post(
        "/admin/reload",
        summary="Load, check and swap in an artifact (loopback clients only)",
        responses={403: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": ReloadRequest.model_json_schema()}}}},
    )
    async def reload(request: Request) -> dict:
        _loopback_only(request)
        _one_worker(workers, "a reload")
        body = await read_body(request, 64_000)
        path = _reload_path(body) or str(state.model.path)
        async with state.reload_lock:
            started = time.perf_counter()
            old = state.model
            try:
                new = await asyncio.to_thread(load_for, settings, path)
                check_compatible(old, new)
            except (ValueError, FileNotFoundError, ImportError, OSError) as e:
                state.metrics.reloads.labels("refused").inc()
                status = 409 if isinstance(e, Incompatible) else 422
                raise HTTPException(status, f"Reload refused, still serving {old.path}: {e}") from e
            state.model = new  # one assignment: the next batch uses it, the one computing finishes on the old
            state.drift.set_reference(new.predictor.preprocessor)
            state.reloads += 1
            state.metrics.reloads.labels("ok").inc()
            state.metrics.loaded.set(new.loaded_at)
        return {
            "reloaded": True,
            "artifact": str(new.path),
            "previous": str(old.path),
            "took_s": time.perf_counter() - started,
            "reloads": state.reloads,
        }

    return app


class PredictRequest(BaseModel):
    """The body of POST /predict."""

    inputs: list[list[float]] = Field(description="One row of raw (not standardised) features per example.")


class TextRequest(BaseModel):
    """The body of POST /predict for a text model."""

    inputs: list[str] = Field(description="One raw text per example; the server tokenizes it as in training.")


class ClassifierAnswer(BaseModel):
    labels: list[int | str | float] = Field(description="The most probable label of each row.")
    probabilities: list[list[float]] = Field(description="Per row, the probability of each label, in label order.")


class RegressionAnswer(BaseModel):
    values: list[float] = Field(description="The predicted value of each row.")


class ReloadRequest(BaseModel):
    path: str | None = Field(default=None, description="The artifact to serve; omitted: re-read the current one.")


class Problem(BaseModel):
    error: str = Field(description="What was wrong and what was expected.")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 once it is known to exceed ``limit`` bytes (declared or streamed).

    An oversized body of up to ``DRAIN_BYTES`` is read to its end and thrown away before the 413 goes
    out: a server that answers and closes while the client is still writing makes the client see a
    reset connection instead of the answer.
    """
    _check_declared(request.headers.get("content-length"), limit)
    return await _in_time(_gather(request.stream(), limit))


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """:func:`read_body` for a plain ASGI handler: the same limits, 413 and 408, straight from ``receive``."""
    return await _in_time(_receive_body(scope, receive, limit))


async def _in_time(reading: Coroutine[Any, Any, bytes]) -> bytes:
    """The body ``reading`` reads, or a 408 when it has not all arrived within ``BODY_TIMEOUT_S``: a client that
    stalls mid-request would otherwise hold its connection (and a graceful shutdown) for as long as it likes."""
    try:
        return await asyncio.wait_for(reading, BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise HTTPException(
            408,
            f"The request body did not all arrive within {BODY_TIMEOUT_S:g} s. Send the whole body at once.",
            headers={"Connection": "close"},
        ) from None


async def _receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
            break
    _check_declared(declared, limit)
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: the whole body in one message
        if len(body) > limit:
            raise _too_big(limit)
        return body

    async def chunks() -> AsyncIterator[bytes]:
        yield body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    return await _gather(chunks(), limit)


def _too_big(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is over the limit of {limit} bytes. Send fewer rows per request.")


def _check_declared(declared: str | None, limit: int) -> None:
    if declared is not None and declared.isdigit() and int(declared) > max(limit, DRAIN_BYTES):
        raise _too_big(limit)


async def _gather(stream: AsyncIterator[bytes], limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > max(limit, DRAIN_BYTES):  # past what is worth draining: answer now
            raise _too_big(limit)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise _too_big(limit)
    return b"".join(chunks)


def parse_inputs(body: bytes, model: ServedModel) -> np.ndarray:
    """The rows of a /predict body as a validated float32 array, or an HTTPException saying what was expected."""
    n = model.num_features
    expected = model.request
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:  # Python's json reads NaN and Infinity (answered below) and says what is wrong
        try:
            doc = json.loads(body)
        except RecursionError as e:
            raise HTTPException(400, f"The body's JSON is nested too deeply to read. Expected {expected}.") from e
        except ValueError as e:  # also a number of thousands of digits, and bytes that are not UTF-8
            raise HTTPException(400, f"The body is not valid JSON ({e}). Expected {expected}.") from e
    if not isinstance(doc, dict) or "inputs" not in doc:
        got = f"an object with keys {sorted(doc)[:5]}" if isinstance(doc, dict) else _json_kind(doc)
        raise HTTPException(422, f"Expected {expected}; got {got}.")
    inputs = doc["inputs"]
    if not isinstance(inputs, list):
        raise HTTPException(422, f'"inputs" must be a list; got {_json_kind(inputs)}. Expected {expected}.')
    if not inputs:
        raise HTTPException(422, f'"inputs" is empty: send at least one row. Expected {expected}.')
    if model.takes_texts:
        try:
            return model.predictor.validate(inputs)  # the tokenizer's ids, or its message naming the text
        except ValueError as e:
            raise HTTPException(422, f"{e} Expected {expected}.") from e
    if not isinstance(inputs[0], list):
        flat = isinstance(inputs[0], (int, float)) and not isinstance(inputs[0], bool)
        got = "a flat list of numbers" if flat else f"a list whose first item is {_json_kind(inputs[0])}"
        raise HTTPException(
            422,
            f'"inputs" must be a list of rows, each a list of {n} numbers; got {got}. '
            f'For one example send {{"inputs": [[...]]}}.',
        )
    try:
        x = np.asarray(inputs)
    except ValueError:  # rows of different lengths or depths (numpy refuses a ragged array)
        bad = [i for i, row in enumerate(inputs) if not (isinstance(row, list) and len(row) == n)]
        if bad:
            lengths = [len(inputs[i]) if isinstance(inputs[i], list) else _json_kind(inputs[i]) for i in bad[:10]]
            problem = f"rows {bad[:10]} do not (lengths {lengths})"
        else:
            nested = [i for i, row in enumerate(inputs) if any(isinstance(v, (list, dict)) for v in row)]
            problem = f"rows {nested[:10]} hold lists or objects where numbers go"
        raise HTTPException(422, f"Every row must hold {n} numbers; {problem}. Expected {expected}.") from None
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e39 cast to float32 is refused below, not warned about
            return model.predictor.validate(x)
    except ValueError as e:
        hint = ""
        if x.dtype.kind not in "iuf":
            hint = ' Over HTTP: send JSON numbers (1.5, not "1.5"), with no null, true/false or deeper nesting.'
        raise HTTPException(422, f"{e}{hint}") from e


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words, not Python's: "a string ('abc')", "null", "an object", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"a string ({value[:30]!r})"
    if isinstance(value, (int, float)):
        return "a number"
    return "an object" if isinstance(value, dict) else "an array"


def _reload_path(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise HTTPException(400, f'The body is not valid JSON ({e}). Expected nothing or {{"path": "DIR"}}.') from e
    if not isinstance(doc, dict) or not isinstance(doc.get("path", ""), (str, type(None))):
        raise HTTPException(422, 'Expected nothing or a JSON object {"path": "DIR"} naming the artifact to serve.')
    return doc.get("path") or None


def _loopback_only(request: Request) -> None:
    host = request.client.host if request.client else None
    if not _is_loopback(host):
        raise HTTPException(
            403,
            f"{request.url.path} answers only clients on the loopback interface (127.0.0.1 or ::1); "
            f"you are {host}. Send it from the server's machine to 127.0.0.1.",
        )


def _is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1, or 127.x written as an IPv6-mapped address (a server on ``::`` sees those)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _one_worker(workers: int, what: str) -> None:
    """A 409 when ``what`` would reach only one of several worker processes."""
    if workers > 1:
        raise HTTPException(
            409,
            f"This server runs {workers} worker processes and {what} reaches only one of them. Restart the "
            f"server instead, or serve with --workers 1 to do it in place.",
        )


def _dumps(content: dict) -> bytes:
    """Compact JSON; floats as shortest round-trip text, the same numbers as ``json.dumps`` writes."""
    return orjson.dumps(content)


async def _send_json(send: Send, status: int, content: dict, headers: Mapping[str, str] | None = None) -> None:
    """A JSON response as the error handlers below write it, from a plain ASGI handler."""
    data = orjson.dumps(content)
    raw = [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def _internal_problem(exc: Exception) -> dict:
    return {"error": f"Internal error ({type(exc).__name__}: {exc}); the server goes on."}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404 and message == "Not Found":
        message = f"No endpoint {request.url.path}. The endpoints: " + ", ".join(ROUTES) + ", /docs, /openapi.json."
    elif exc.status_code == 405 and message == "Method Not Allowed":
        message = f"{request.url.path} does not take {request.method}."
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(_internal_problem(exc), status_code=500)


class CountRequests:
    """ASGI middleware: every HTTP request counted by route and status code, and timed.

    (``POST /predict`` is counted by its own handler, which answers before this middleware; a client that
    goes away before its request was read is counted with status 499, as nginx does.)
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.request(path, status, time.perf_counter() - started)
