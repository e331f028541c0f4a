"""The HTTP interface: a FastAPI application around one :class:`~mlkit.serve.model.ServedModel`.

===========================  =====================================================================
``POST /predict``            ``{"inputs": [[...], ...]}``, one row of raw features per example →
                             ``{"labels": [...], "probabilities": [[...], ...]}`` (classifier) or
                             ``{"values": [...]}`` (regression); ``Server-Timing`` says how long the
                             request queued and how long its model calls took, ``X-Batch-Rows`` how
                             many rows shared its (largest) model call; a text model (lesson 15)
                             takes ``{"inputs": ["a text", ...]}``, tokenized as in training
``GET /health``              200 while the model is loaded and requests are taken, 503 from SIGTERM on
``GET /metadata``            task, labels, input width, the batching settings, versions
``GET /metrics``             Prometheus text format (see :mod:`mlkit.serve.metrics`)
``GET /drift``               the crude drift watch (see :mod:`mlkit.serve.drift`)
``POST /admin/reload``       optional ``{"path": ...}``: load, check, then swap in a new artifact
``POST /admin/drift/reset``  forget the rows the drift watch has seen
``GET /docs``                the interactive OpenAPI page (``/openapi.json`` is the schema)
===========================  =====================================================================

Every error is JSON ``{"error": "..."}`` that says what was expected: malformed JSON
is 400, a body over ``max_body_bytes`` 413, a body that stalls 408, well-formed JSON
that the predictor refuses 422 (its own ``validate`` message, or its finite-output
check for rows that overflow the model), as are rows far outside the training data
(:meth:`~mlkit.serve.model.ServedModel.check_range`, ``max_input_z``), a full queue
503 with ``Retry-After``. The body is read as JSON whatever its Content-Type says, so ``curl -d '{"inputs": ...}'``
works. Python's ``json`` reads the tokens ``NaN`` and ``Infinity``; they get the
predictor's 422 for non-finite input. The admin routes answer only loopback clients.

The answer is the :class:`~mlkit.infer.Predictor`'s own: each request's rows are
checked by ``Predictor.validate``, a batch of them goes through one
``Predictor.outputs`` call, and each request's share becomes its answer through
``Predictor.reply`` (the finite-output check, the labels), so a served answer is
what ``predict`` gives, and a row that overflows the model fails only its own request.

For a small model most of a request's time is the server's own Python, so
``POST /predict`` has one handler, a plain ASGI function that the application calls
before FastAPI's routing and middleware; FastAPI serves every other route and the
``/docs`` page, whose schema for ``/predict`` is written out in :func:`_predict_doc`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import ipaddress
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import FrameType

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
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
CLOSE = (b"connection", b"close")  # sent with every answer while draining: clients move to another server
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
        self.settled = 0  # /predict requests in the batcher's hands
        self.reload_lock = asyncio.Lock()
        self.reloads = 0
        self.draining = False  # SIGTERM came: /health says 503, every answer closes its connection

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
    """FastAPI, with ``POST /predict`` answered by :meth:`predict` before FastAPI's own layers; every request,
    whichever answers it, counted and timed in the metrics by route and status."""

    mlkit: State
    predict_doc: dict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started, path, status = time.perf_counter(), scope["path"], 500
        try:
            if path == "/predict":
                status = await self.predict(scope, receive, send)
                return

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if self.mlkit.draining:
                        message = {**message, "headers": [*message.get("headers", []), CLOSE]}
                await send(message)

            await super().__call__(scope, receive, sending)
        finally:
            self.mlkit.metrics.request(path if path in ROUTES else "other", status, time.perf_counter() - started)

    async def predict(self, scope: Scope, receive: Receive, send: Send) -> int:
        """``POST /predict``: answer one request and return the status it got (499: the client went away)."""
        headers: Mapping[str, str] | None
        try:
            data, headers = await self._answer(scope, receive)
            status = 200
        except HTTPException as e:
            status, data, headers = e.status_code, orjson.dumps({"error": e.detail}), e.headers
        except ClientDisconnect:
            return DISCONNECTED
        except Exception as e:  # a bug or a failing model: this request hears it, the server goes on
            status, data, headers = 500, orjson.dumps(_internal_problem(e)), None
        raw = [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json")]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        if self.mlkit.draining:
            raw.append(CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})
        return status

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[bytes, dict[str, str]]:
        if scope["method"] != "POST":
            raise HTTPException(405, f"/predict does not take {scope['method']}; send POST.", headers={"Allow": "POST"})
        state = self.mlkit
        body = await read_body(scope, receive, state.settings.max_body_bytes)
        model = state.model  # validated and answered by the same model, even if a reload swaps it meanwhile
        big = len(body) > BIG_BODY
        x = await asyncio.to_thread(parse_inputs, body, model) if big else parse_inputs(body, model)
        state.settled += 1
        try:
            answer = await state.batcher.submit(x)
        except (QueueFull, Closed) as e:
            raise HTTPException(503, f"{e} Retry in a moment.", headers={"Retry-After": "1"}) from e
        finally:
            state.settled -= 1
        data = await asyncio.to_thread(_reply, model, answer.outputs, x) if big else _reply(model, answer.outputs, x)
        timing = f"queue;dur={answer.queue_s * 1000:.3f}, compute;dur={answer.compute_s * 1000:.3f}"
        return data, {"Server-Timing": timing, "X-Batch-Rows": str(answer.batch_rows)}


def create_app(settings: Settings, model: ServedModel | None = None, *, workers: int = 1) -> ServingApp:
    """The application serving ``settings.path`` (or the already loaded ``model``), for one process of ``workers``."""
    if model is None:
        model = load_for(settings)
    state = State(settings, model, workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        with _drain_on_sigterm(state, settings.drain_s):
            yield
        await state.batcher.stop(timeout=settings.shutdown_timeout_s)

    app = ServingApp(
        title="mlkit serve",
        version=importlib.metadata.version("mlkit-course"),
        summary=f"A frozen {model.task} model ({model.inputs}) from {model.path.name}.",
        lifespan=lifespan,
        docs_url=None,  # served below from the packaged Swagger UI, so /docs works with no internet
    )
    app.mlkit, app.predict_doc = state, _predict_doc(model)
    _offline_docs(app)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)

    @app.get("/health", summary="200 while the model is loaded and requests are taken")
    async def health() -> JSONResponse:
        closing = state.draining or state.batcher.closed
        content = {
            "status": "shutting down" if closing else "ok",
            "artifact": str(state.model.path),
            "queue_requests": state.batcher.waiting_requests,
            "pid": os.getpid(),
        }
        return JSONResponse(content, status_code=503 if closing else 200)

    @app.get("/metadata", summary="What the model takes and answers, and how it is served")
    async def metadata() -> dict:
        keys = ("max_batch", "max_wait_ms", "max_queue", "max_body_bytes", "fixed_shape", "max_input_z")
        server = {key: getattr(settings, key) for key in keys}
        return {
            **state.model.describe(),
            "server": {**server, "workers": workers, "pid": os.getpid(), "reloads": state.reloads},
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
        _admin_only(request, workers, "a drift reset")
        state.drift.reset()
        return {"reset": True, "pid": os.getpid()}

    reload_body = {"type": "object", "properties": {"path": {"type": "string", "description": "omitted: re-read"}}}

    @app.post(
        "/admin/reload",
        summary="Load, check and swap in an artifact (loopback clients only)",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": reload_body}}}},
    )
    async def reload(request: Request) -> dict:
        _admin_only(request, workers, "a reload")
        path = _reload_path(await read_body(request.scope, request.receive, 64_000)) or str(state.model.path)
        async with state.reload_lock:
            started, old = time.perf_counter(), state.model
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
        took = time.perf_counter() - started
        return {
            "reloaded": True,
            "artifact": str(new.path),
            "previous": str(old.path),
            "took_s": took,
            "reloads": state.reloads,
        }

    return app


@contextlib.contextmanager
def _drain_on_sigterm(state: State, drain_s: float) -> Iterator[None]:
    """On SIGTERM, answer /health 503 at once and go on serving for ``drain_s`` seconds (a load balancer's time to
    see it and stop sending; each answer meanwhile closes its connection), then begin uvicorn's own graceful stop,
    which answers what was read. Wraps the handler uvicorn installed; a second SIGTERM stops at once."""
    stop = signal.getsignal(signal.SIGTERM)  # uvicorn's handle_exit, in this process's main thread
    if drain_s <= 0 or not callable(stop) or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()

    def drain(number: int, frame: FrameType | None) -> None:
        if state.draining:
            stop(number, frame)
            return
        state.draining = True
        loop.call_soon_threadsafe(loop.call_later, drain_s, stop, number, None)

    signal.signal(signal.SIGTERM, drain)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, stop)


def _predict_doc(model: ServedModel) -> dict:
    """The OpenAPI description of ``POST /predict`` (answered outside FastAPI's routing, so written here)."""
    texts = model.takes_texts
    numbers = {"type": "array", "items": {"type": "number"}}
    row = {"type": "string"} if texts else numbers
    request = {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array", "items": row}}}
    if model.task == "classification":
        fields = {"labels": {"type": "array", "items": {}}, "probabilities": {"type": "array", "items": numbers}}
    else:
        fields = {"values": numbers}
    example = {"inputs": ["I want my money back"] if texts else [[0.0] * model.num_features]}
    problem = {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}
    errors = {"400": "not JSON", "413": "body too large", "422": "not rows the model takes", "503": "too busy"}
    return {
        "post": {
            "summary": "Answer for each row of raw features",
            "description": f"Send {model.request}.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": request, "example": example}}},
            "responses": {
                "200": {
                    "description": "One answer per row",
                    "content": {"application/json": {"schema": {"type": "object", "properties": fields}}},
                },
                **{code: {"description": what, "content": problem} for code, what in errors.items()},
            },
        }
    }


def _offline_docs(app: ServingApp) -> None:
    """``/docs`` with Swagger UI's files from the ``swagger-ui-bundle`` package instead of a CDN: a classroom
    or a server without internet still gets the page where a learner tries ``/predict``."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
    schema = app.openapi

    def openapi() -> dict:
        document = schema()
        document["paths"]["/predict"] = app.predict_doc
        return document

    app.openapi = openapi  # type: ignore[method-assign]

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


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body; a 413 once it is known to exceed ``limit`` bytes (declared or streamed), a 408 when it
    has not all arrived within ``BODY_TIMEOUT_S`` (a stalled client would hold its connection as long as it likes).

    An oversized body of up to ``DRAIN_BYTES`` is read to its end and thrown away before the 413 goes out: a
    server that answers and closes while the client is still writing makes the client see a reset connection.
    """
    declared = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
    if declared.isdigit() and int(declared) > max(limit, DRAIN_BYTES):
        raise _too_big(limit)
    try:
        return await asyncio.wait_for(_gather(receive, limit), BODY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise HTTPException(
            408,
            f"The request body did not all arrive within {BODY_TIMEOUT_S:g} s. Send the whole body at once.",
            headers={"Connection": "close"},
        ) from None


async def _gather(receive: Receive, limit: int) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > max(limit, DRAIN_BYTES):  # past what is worth draining: answer now
            raise _too_big(limit)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise _too_big(limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_big(limit: int) -> HTTPException:
    return HTTPException(413, f"The request body is over the limit of {limit} bytes. Send fewer rows per request.")


def parse_inputs(body: bytes, model: ServedModel) -> np.ndarray:
    """The rows of a /predict body, validated by the predictor, or an HTTPException saying what was expected."""
    expected = model.request
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:  # Python's json reads NaN and Infinity (refused by validate) and says what is wrong
        try:
            doc = json.loads(body)
        except RecursionError as e:
            raise HTTPException(400, f"The body's JSON is nested too deeply to read. Expected {expected}.") from e
        except ValueError as e:  # also a number of thousands of digits, and bytes that are not UTF-8
            raise HTTPException(400, f"The body is not valid JSON ({e}). Expected {expected}.") from e
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list) or not inputs:
        if not isinstance(doc, dict) or "inputs" not in doc:
            got = f"an object with keys {sorted(doc)[:5]}" if isinstance(doc, dict) else _json_kind(doc)
        else:
            got = '"inputs" empty' if inputs == [] else f'"inputs" as {_json_kind(inputs)}'
        raise HTTPException(422, f"Expected {expected}; got {got}.")
    try:
        x = model.predictor.validate(inputs)
    except ValueError as e:
        raise HTTPException(422, f"{e} Over HTTP: send {expected}.") from e
    try:
        model.check_range(x)
    except ValueError as e:
        raise HTTPException(422, str(e)) from e
    return x


def _reply(model: ServedModel, out: np.ndarray, x: np.ndarray) -> bytes:
    """The predictor's answer for one request's outputs as JSON bytes (floats as shortest round-trip text, the
    numbers ``json.dumps`` writes), or a 422 naming the rows whose outputs are not finite."""
    try:
        return orjson.dumps(model.predictor.reply(out, x))
    except ValueError as e:
        raise HTTPException(422, str(e)) from e


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words, not Python's: "a string ('abc')", "null", "an object", ..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
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


def _admin_only(request: Request, workers: int, what: str) -> None:
    """A 403 unless the client is on the loopback interface; a 409 when ``what`` would reach one of several workers."""
    host = request.client.host if request.client else None
    if not _is_loopback(host):
        raise HTTPException(
            403,
            f"{request.url.path} answers only clients on the loopback interface (127.0.0.1 or ::1); "
            f"you are {host}. Send it from the server's machine to 127.0.0.1.",
        )
    if workers > 1:
        raise HTTPException(
            409,
            f"This server runs {workers} worker processes and {what} reaches only one of them. Restart the "
            f"server instead, or serve with --workers 1 to do it in place.",
        )


def _is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1, or 127.x written as an IPv6-mapped address (a server on ``::`` sees those)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


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
