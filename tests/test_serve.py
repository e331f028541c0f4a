"""The model server over real HTTP on 127.0.0.1: answers, batching, errors, back-pressure, reload, drift, load.

Every server is a child process (``mlkit.serve.Server``) on a port the kernel picks;
every wait is bounded and every process is stopped, also when a test fails. The
tests check behaviour (what is answered, counted and refused), never speed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import json
import math
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import mlkit
import mlkit.serve
from mlkit.__main__ import main
from mlkit.infer.text import freeze_text
from mlkit.serve import Batcher, Server, Settings, load

TIMEOUT = 30.0  # seconds: the most any single HTTP exchange may take here


# --- artifacts and servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, digits):
    """Two digit classifiers (for a reload), a regression model, and an altered copy of the first."""
    root = tmp_path_factory.mktemp("serve")
    paths = {}
    for name, seed in (("digits", 0), ("digits_b", 1)):
        model = mlkit.MLP(64, (64,), 10, seed=seed)
        mlkit.fit(model, digits, mlkit.TrainConfig(epochs=3, progress=False, seed=seed))
        paths[name] = mlkit.save_predictor(mlkit.freeze(model, digits), root / name)
    curve = mlkit.load_dataset("regression_curve", n=200, seed=0)
    regressor = mlkit.MLP(1, (16,), 1, seed=0)
    mlkit.fit(regressor, curve, mlkit.TrainConfig(epochs=20, progress=False))
    paths["regression"] = mlkit.save_predictor(mlkit.freeze(regressor, curve), root / "regression")
    reviews = mlkit.load_dataset("reviews")
    bag = mlkit.EmbeddingBag(reviews.tokenizer.size, reviews.num_classes, seed=0)
    mlkit.fit(bag, reviews, mlkit.TrainConfig(epochs=5, progress=False))
    paths["reviews"] = mlkit.save_predictor(freeze_text(bag, reviews), root / "reviews")
    broken = root / "broken"
    shutil.copytree(paths["digits"], broken)
    payload = broken / "function.jaxexport"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    paths["broken"] = broken
    return paths


SERVERS = {  # name -> (artifact, options); all started at once, stopped at the end of the module
    "main": ("digits", {"max_batch": 16, "max_wait_ms": 5.0}),
    "slow": ("digits", {"max_batch": 1, "max_queue": 2, "model_delay_ms": 300.0}),
    "graceful": ("digits", {"max_batch": 1, "model_delay_ms": 300.0}),
    "reload": ("digits", {}),
    "regression": ("regression", {"max_input_z": 0}),  # no range check: rows reach the finite-output check
    "text": ("reviews", {"max_batch": 8}),
    "workers": ("digits", {"workers": 2}),
}


@pytest.fixture(scope="module")
def servers(artifacts):
    with contextlib.ExitStack() as stack:
        made = {
            name: Server(artifacts[artifact], start_timeout=90, **options)
            for name, (artifact, options) in SERVERS.items()
        }
        for server in made.values():
            stack.callback(server.stop)
        with ThreadPoolExecutor(len(made)) as pool:  # start together: each spends its first second importing
            for future in [pool.submit(server.start) for server in made.values()]:
                future.result()
        yield made


@pytest.fixture
def url(servers):
    return servers["main"].url


@pytest.fixture(scope="module")
def predictor(artifacts):
    return mlkit.load_predictor(artifacts["digits"])


def at_shape(predictor, x: np.ndarray, shape: int) -> np.ndarray:
    """The predictor's probabilities with every call padded to ``shape`` rows, as a server with that max batch runs."""
    return np.concatenate([predictor.predict_proba(x[i : i + shape]) for i in range(0, len(x), shape)])


async def post_all(url: str, bodies: list, connections: int = 64) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits, trust_env=False) as client:
        return await asyncio.gather(*(client.post(f"{url}/predict", json=body) for body in bodies))


def predict_concurrently(url: str, rows_per_request: list[np.ndarray], connections: int = 64) -> list[httpx.Response]:
    return asyncio.run(post_all(url, [{"inputs": rows.tolist()} for rows in rows_per_request], connections))


def metrics(url: str) -> dict[str, list]:
    text = httpx.get(f"{url}/metrics", timeout=TIMEOUT).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count")
    return sum(
        s.value
        for s in families.get(family, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# --- settings, command line, batcher (no HTTP) -------------------------------------------------------------------


def test_settings_refuse_bad_values_and_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match=r"max_batch must be a whole number >= 1 \(1 turns batching off\), got 0"):
        Settings(tmp_path, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms must be a number >= 0") as error:
        Settings(tmp_path, max_wait_ms=-1, workers=0)
    assert "workers must be a whole number >= 1" in str(error.value)  # every problem at once


def test_serving_imports_no_training_and_no_lesson_ui():
    """A serving process needs the artifact, JAX and NumPy: every import in mlkit/serve, lazy ones included."""
    forbidden = ("mlkit.train", "mlkit.lessons", "ipywidgets", "matplotlib", "IPython", "optax")
    found = set()
    for path in Path(mlkit.serve.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    assert "uvicorn" in found and "mlkit.infer" in found  # the parse sees real imports
    assert not {m for m in found if any(m == f or m.startswith(f + ".") for f in forbidden)}


def test_the_batcher_gives_every_request_exactly_its_own_rows():
    """A fake model (each row doubled) shows every request gets its own rows back, in order, however grouped."""
    calls: list[int] = []

    def compute(x):
        calls.append(len(x))
        time.sleep(0.002)
        return x * 2

    async def scenario():
        batcher = Batcher(compute, max_batch=8, max_wait_s=0.005, max_queue=1000)
        batcher.start()
        rng = np.random.default_rng(0)
        requests = [rng.standard_normal((int(rng.integers(1, 20)), 3)).astype(np.float32) for _ in range(60)]
        answers = await asyncio.gather(*(batcher.submit(x) for x in requests))
        await batcher.stop()
        return requests, answers

    requests, answers = asyncio.run(scenario())
    for x, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer.outputs, x * 2)
        assert answer.batches >= -(-len(x) // 8) and answer.batch_rows <= 8 and answer.queue_s >= 0
    assert max(calls) <= 8 and sum(calls) == sum(len(x) for x in requests)
    assert max(calls) > 1  # they were grouped


def test_the_batcher_refuses_at_once_when_its_queue_is_full():
    async def scenario():
        gate = threading.Event()
        batcher = Batcher(lambda x: (gate.wait(10), x)[1], max_batch=1, max_wait_s=0, max_queue=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(np.zeros((1, 2), np.float32)))
        await asyncio.sleep(0.05)  # the first is now in the model; two more may wait
        waiting = [asyncio.ensure_future(batcher.submit(np.ones((1, 2), np.float32))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(mlkit.serve.batcher.QueueFull, match="max_queue is 2"):
            await batcher.submit(np.ones((1, 2), np.float32))
        gate.set()
        done = await asyncio.gather(first, *waiting)
        await batcher.stop()
        return done

    assert [len(answer.outputs) for answer in asyncio.run(scenario())] == [1, 1, 1]


def test_the_batcher_stops_waiting_when_no_other_request_can_join():
    """With ``may_join`` at 0 a lone request goes at once, however long ``max_wait_s``; otherwise it waits it out."""

    async def one(may_join, wait_s):
        batcher = Batcher(lambda x: x, max_batch=8, max_wait_s=wait_s, may_join=may_join)
        batcher.start()
        started = time.perf_counter()
        answer = await batcher.submit(np.ones((1, 2), np.float32))
        took = time.perf_counter() - started
        await batcher.stop()
        return answer, took

    answer, took = asyncio.run(one(lambda: 0, 20.0))
    assert took < 5.0 and answer.batch_rows == 1
    answer, took = asyncio.run(one(lambda: 3, 0.2))
    assert took >= 0.2 and answer.queue_s >= 0.2


def test_a_cheap_model_is_called_on_the_event_loop_and_a_slow_one_on_the_thread():
    async def scenario(compute_s):
        threads: list[int] = []

        def compute(x):
            threads.append(threading.get_ident())
            time.sleep(compute_s)
            return x

        batcher = Batcher(compute, max_batch=4, max_wait_s=0, inline_below_s=0.01)
        batcher.start()
        for _ in range(4):
            await batcher.submit(np.ones((1, 2), np.float32))
        await batcher.stop()
        return threads, batcher.inline_calls

    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    threads, inline = asyncio.run(scenario(0.0))
    assert threads[0] != loop_thread and set(threads[1:]) == {loop_thread} and inline == 3  # the first call measures
    threads, inline = asyncio.run(scenario(0.03))
    assert loop_thread not in threads and inline == 0


def test_the_drift_watch_folds_rows_in_order_as_one_running_mean():
    """Rows kept and folded together give the exponentially weighted mean of every row, newest weighted most."""
    rng = np.random.default_rng(0)
    pre = mlkit.data.Preprocessor(np.zeros(3, np.float32), np.ones(3, np.float32), "standardize")
    watch = mlkit.serve.DriftWatch(pre, window=50, min_rows=0)
    parts = [rng.standard_normal((int(k), 3)).astype(np.float32) + 1.0 for k in rng.integers(1, 40, 60)]
    for part in parts:
        watch.update(part)
    rows = np.concatenate(parts).astype(np.float64)
    keep = 1 - 1 / 50
    weights = keep ** np.arange(len(rows) - 1, -1, -1)
    np.testing.assert_allclose(watch.z(), weights @ rows / weights.sum(), rtol=1e-9)
    assert watch.report()["rows"] == len(rows)


# --- answers -----------------------------------------------------------------------------------------------------


def test_answers_match_the_predictor_row_for_row(url, predictor, digits):
    x = digits.test.raw_x
    expected = at_shape(predictor, x, 16)  # the main server pads every model call to its max batch, 16
    singles = predict_concurrently(url, [x[i : i + 1] for i in range(len(x))])
    assert [r.status_code for r in singles] == [200] * len(x)
    labels = [r.json()["labels"][0] for r in singles]
    probabilities = np.array([r.json()["probabilities"][0] for r in singles], np.float32)
    assert labels == predictor.predict(x).tolist()
    np.testing.assert_array_equal(probabilities, expected)  # bit for bit, whatever the grouping
    np.testing.assert_allclose(probabilities, predictor.predict_proba(x), rtol=0, atol=1e-6)

    cuts = [0, 1, 8, 9, 40, 150, len(x)]  # requests of 1, 7, 1, 31, 110 (over max batch: split) and 209 rows
    groups = predict_concurrently(url, [x[a:b] for a, b in itertools.pairwise(cuts)])
    assert [r.status_code for r in groups] == [200] * (len(cuts) - 1)
    assert [label for r in groups for label in r.json()["labels"]] == labels
    np.testing.assert_array_equal(
        np.concatenate([r.json()["probabilities"] for r in groups]).astype(np.float32), expected
    )
    assert all(int(r.headers["x-batch-rows"]) <= 16 for r in groups + singles)
    assert "queue;dur=" in singles[0].headers["server-timing"] and "compute;dur=" in singles[0].headers["server-timing"]


def test_batches_form_under_concurrent_load_and_never_exceed_max_batch(url, digits):
    before = metrics(url)
    responses = predict_concurrently(url, [digits.test.raw_x[i : i + 1] for i in range(200)])
    assert all(r.status_code == 200 for r in responses)
    after = metrics(url)
    calls = sample(after, "mlkit_batch_rows_count") - sample(before, "mlkit_batch_rows_count")
    single = sample(after, "mlkit_batch_rows_bucket", le="1.0") - sample(before, "mlkit_batch_rows_bucket", le="1.0")
    within = sample(after, "mlkit_batch_rows_bucket", le="16.0") - sample(before, "mlkit_batch_rows_bucket", le="16.0")
    rows = sample(after, "mlkit_rows_total") - sample(before, "mlkit_rows_total")
    assert rows == 200 and calls < 200, "200 single-row requests at once should share model calls"
    assert single < calls, "some model call should hold more than one row"
    assert within == calls, "no model call may hold more than --max-batch rows"
    assert max(int(r.headers["x-batch-rows"]) for r in responses) > 1


# --- errors ------------------------------------------------------------------------------------------------------

ROW = ", ".join(["1"] * 63)
BAD = {  # name -> (body, status, the words that matter in the error)
    "wrong width": ('{"inputs": [[1, 2, 3]]}', 422, "got 3 features"),
    "strings": ('{"inputs": [["1"' + ", 1" * 63 + "]]}", 422, "dtype <U"),
    "null": ('{"inputs": [[null, ' + ROW + "]]}", 422, "dtype object"),
    "NaN token": ('{"inputs": [[NaN, ' + ROW + "]]}", 422, "rows [0] hold NaN"),
    "Infinity token": ('{"inputs": [[1, ' + ROW + "], [-Infinity, " + ROW + "]]}", 422, "rows [1] hold NaN"),
    "empty list": ('{"inputs": []}', 422, '"inputs" empty'),
    "no inputs key": ('{"rows": [[1]]}', 422, "keys ['rows']"),
    "flat list": ('{"inputs": [' + ROW + ", 1]}", 422, "shape (64,)"),
    "a list of objects": ('{"inputs": [{"a": 1}]}', 422, "dtype object"),
    "a list of strings": ('{"inputs": ["hello"]}', 422, "dtype <U5"),
    "inputs null": ('{"inputs": null}', 422, '"inputs" as null'),
    "a bare string": ('"hello"', 422, "a string ('hello')"),
    "rows of lists": ('{"inputs": [[' + ROW + ", 1], [" + ", ".join(["[0]"] * 64) + "]]}", 422, "lists where numbers"),
    "ragged rows": ('{"inputs": [[' + ROW + ", 1], [1, 2]]}", 422, "rows [1] do not hold 64 numbers"),
    "malformed JSON": ('{"inputs": [[1, 2', 400, "not valid JSON"),
    "not UTF-8": (b'{"inputs": [[\xff]]}', 400, "not valid JSON"),
    "nested 5,000 deep": ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", 400, "nested too deeply"),
    "a 5,000-digit number": ('{"inputs": [[' + "9" * 5000 + ", " + ROW + "]]}", 400, "not valid JSON"),
    "over the size limit": ('{"inputs": [' + ",".join(["[" + ROW + ", 1]"] * 8000) + "]}", 413, "1000000 bytes"),
    "GET": (None, 405, "does not take GET"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_gets_a_4xx_that_says_what_was_expected_and_the_server_goes_on(case, url, digits):
    body, status, words = BAD[case]
    headers = {"content-type": "application/json"}
    method = "GET" if body is None else "POST"
    response = httpx.request(method, f"{url}/predict", content=body, headers=headers, timeout=TIMEOUT)
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()
    good = httpx.post(f"{url}/predict", json={"inputs": digits.test.raw_x[:2].tolist()}, timeout=TIMEOUT)
    assert good.status_code == 200 and len(good.json()["labels"]) == 2


def test_a_body_limit_above_the_drain_size_is_the_limit_enforced(artifacts):
    """--max-body-bytes 20 MB: a 17 MB body is read and parsed (here: not JSON, a 400), a 21 MB one is a 413."""
    app = mlkit.serve.app.create_app(Settings(artifacts["digits"], max_body_bytes=20_000_000))
    assert mlkit.serve.app.DRAIN_BYTES < 17_000_000

    async def send(size: int) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/predict", content=b"{" + b" " * (size - 1))

    assert asyncio.run(send(17_000_000)).status_code == 400
    too_big = asyncio.run(send(21_000_000))
    assert too_big.status_code == 413 and "limit of 20000000 bytes" in too_big.json()["error"]


def test_a_client_that_stalls_mid_body_gets_a_408_and_is_let_go(url, digits):
    """Headers, then one byte of a 100-byte body, then nothing: answered 408 and closed, and the server goes on."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as stalled:
        stalled.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        reply = b""
        while chunk := stalled.recv(65536):  # until the server closes the connection
            reply += chunk
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408") and b"did not all arrive within 5 s" in reply, reply[:300]
    assert waited < TIMEOUT  # closed by the server, not by this test's own timeout
    good = httpx.post(f"{url}/predict", json={"inputs": digits.test.raw_x[:1].tolist()}, timeout=TIMEOUT)
    assert good.status_code == 200


OVERFLOW = [[3e38] * 64]  # finite float32 inputs whose outputs are not finite: Predictor.predict raises on them


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch": 16, "max_wait_ms": 50.0},
        {"max_batch": 16, "max_wait_ms": 50.0, "fixed_shape": False},
        {"max_batch": 1},
    ],
    ids=["fixed shape", "no fixed shape", "no batching"],
)
def test_a_row_that_overflows_the_model_is_its_own_requests_422_and_its_batch_mates_are_answered(
    artifacts, predictor, digits, options
):
    """In process (ASGI), three requests at once: the middle one's row overflows; the others are answered as
    ``Predictor.answer`` answers them, and every request is counted under its own status."""
    app = mlkit.serve.app.create_app(Settings(artifacts["digits"], max_input_z=0, **options))  # past the range check
    good = digits.test.raw_x[:3]
    with pytest.raises(ValueError, match="NaN or infinite outputs"):
        predictor.predict(OVERFLOW)

    async def scenario():
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = [good.tolist(), OVERFLOW, good.tolist()]
            return await asyncio.gather(*(c.post("/predict", json={"inputs": rows}) for rows in bodies))

    first, bad, last = asyncio.run(scenario())
    assert (first.status_code, bad.status_code, last.status_code) == (200, 422, 200), bad.text
    assert "rows [0]" in bad.json()["error"].lower() and "overflow" in bad.json()["error"]
    if options["max_batch"] > 1:  # they shared a model call with the bad row
        assert int(first.headers["x-batch-rows"]) > len(good)
    if options.get("fixed_shape") is False:  # padded as predict pads: the very same answer
        assert first.json() == last.json() == predictor.answer(good)
    assert first.json()["labels"] == predictor.predict(good).tolist()
    counted = {
        (s.labels["path"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(app.mlkit.metrics.exposition().decode())
        for s in family.samples
        if s.name == "mlkit_http_requests_total"
    }
    assert counted == {("/predict", "200"): 2, ("/predict", "422"): 1}


def test_a_regression_row_that_overflows_is_a_422_not_a_null(servers, artifacts):
    regressor = mlkit.load_predictor(artifacts["regression"])
    with pytest.raises(ValueError, match="NaN or infinite outputs"):
        regressor.predict([[3e38]])
    response = httpx.post(f"{servers['regression'].url}/predict", json={"inputs": [[3e38]]}, timeout=TIMEOUT)
    assert response.status_code == 422 and "overflow" in response.json()["error"], response.text


def test_importing_the_server_without_the_serve_extra_names_the_extra():
    """With FastAPI missing, ``import mlkit.serve`` is one ImportError that says which extra to install."""
    code = "import sys; sys.modules['fastapi'] = None\ntry:\n import mlkit.serve\nexcept ImportError as e: print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "[serve]" in done.stdout and "fastapi" in done.stdout, done.stdout + done.stderr
    assert len(done.stdout.strip().splitlines()) == 1


def test_unknown_routes_and_methods_answer_json_errors(url):
    missing = httpx.get(f"{url}/predictions", timeout=TIMEOUT)
    assert missing.status_code == 404 and "/predict" in missing.json()["error"]
    wrong = httpx.delete(f"{url}/health", timeout=TIMEOUT)
    assert wrong.status_code == 405 and "does not take DELETE" in wrong.json()["error"]


def test_a_full_queue_answers_503_with_retry_after_not_a_hang(servers, digits):
    slow = servers["slow"].url  # one row per model call, 300 ms each, at most 2 requests waiting
    responses = predict_concurrently(slow, [digits.test.raw_x[i : i + 1] for i in range(8)], connections=8)
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "max_queue" in refused.json()["error"]
    assert httpx.get(f"{slow}/health", timeout=TIMEOUT).status_code == 200


def test_sigterm_answers_the_requests_in_flight_then_exits_0(servers, digits):
    server = servers["graceful"]  # 300 ms per row, one row per model call: three requests take about a second

    async def scenario():
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
            sent = [
                asyncio.ensure_future(client.post(f"{server.url}/predict", json={"inputs": [row.tolist()]}))
                for row in digits.test.raw_x[:3]
            ]
            deadline = time.monotonic() + TIMEOUT
            while (await client.get(f"{server.url}/health")).json()["queue_requests"] < 2:
                assert time.monotonic() < deadline, "the requests never reached the queue"
                await asyncio.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*sent)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert server.process.wait(TIMEOUT) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_a_broken_artifact_or_a_taken_port_stops_the_start_with_the_reason(artifacts):
    with pytest.raises(RuntimeError, match="has been altered") as error:
        Server(artifacts["broken"], start_timeout=60).start()
    assert "exit status 2" in str(error.value) and "Traceback" not in str(error.value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mlkit", "serve", str(artifacts["digits"]), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and f"Cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert done.stdout == ""


# --- reload ------------------------------------------------------------------------------------------------------


def test_reload_swaps_the_model_under_load_with_no_failed_request(servers, artifacts, digits):
    url = servers["reload"].url
    x = digits.test.raw_x[:64]
    new = mlkit.load_predictor(artifacts["digits_b"])
    box = {}
    loading = threading.Thread(target=lambda: box.update(result=load.run(url, concurrency=4, duration=3.0)))
    loading.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while sample(metrics(url), "mlkit_http_requests_total", path="/predict") < 20:
            assert time.monotonic() < deadline and loading.is_alive(), "the load never got going"
            time.sleep(0.05)
        answer = httpx.post(f"{url}/admin/reload", json={"path": str(artifacts["digits_b"])}, timeout=TIMEOUT)
        still_loading = loading.is_alive()
    finally:
        loading.join(TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["artifact"] == str(artifacts["digits_b"]) and answer.json()["reloads"] == 1
    assert still_loading, "the reload should have happened while the load ran"
    result = box["result"]
    assert result.errors == {} and result.ok == result.sent > 20
    served = httpx.post(f"{url}/predict", json={"inputs": x.tolist()}, timeout=TIMEOUT).json()
    np.testing.assert_array_equal(np.asarray(served["probabilities"], np.float32), at_shape(new, x, 64))
    assert httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()["artifact"] == str(artifacts["digits_b"])


@pytest.mark.parametrize(
    ("artifact", "status", "words"),
    [
        ("broken", 422, "has been altered"),
        ("missing", 422, "No predictor artifact at"),
        ("regression", 409, "task 'classification' -> 'regression'"),
    ],
)
def test_a_reload_that_cannot_serve_is_refused_and_the_old_model_keeps_serving(
    servers, artifacts, digits, artifact, status, words
):
    url = servers["reload"].url
    serving = httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()["artifact"]
    path = str(artifacts.get(artifact, artifacts["digits"].parent / "no-such-model"))
    refused = httpx.post(f"{url}/admin/reload", json={"path": path}, timeout=TIMEOUT)
    assert refused.status_code == status and words in refused.json()["error"], refused.text
    assert f"still serving {serving}" in refused.json()["error"]
    assert httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()["artifact"] == serving
    still = httpx.post(f"{url}/predict", json={"inputs": digits.test.raw_x[:3].tolist()}, timeout=TIMEOUT)
    assert still.status_code == 200 and len(still.json()["labels"]) == 3


def test_admin_routes_answer_only_loopback_clients(artifacts):
    """In process, with the client address an ASGI server would report for each peer (no traffic is sent)."""
    app = mlkit.serve.app.create_app(Settings(artifacts["digits"]))

    async def reset_from(host: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post("/admin/drift/reset")

    async def scenario():
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))  # TEST-NET-1: documentation only
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            remote = [await client.post(path) for path in ("/admin/reload", "/admin/drift/reset")]
        local = [await reset_from(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1")]
        return [*remote, await reset_from("::ffff:192.0.2.7")], local

    refused, answered = asyncio.run(scenario())
    for response in refused:
        assert response.status_code == 403 and "only clients on the loopback interface" in response.json()["error"]
    assert [r.status_code for r in answered] == [200] * 4  # a server on "::" sees 127.0.0.1 as ::ffff:127.0.0.1


# --- drift, regression, metadata ---------------------------------------------------------------------------------


def test_drift_flags_shifted_digits_and_not_the_test_digits(url, digits):
    x = digits.test.raw_x

    def serve_and_report(rows):
        assert httpx.post(f"{url}/admin/drift/reset", timeout=TIMEOUT).status_code == 200
        for i in range(0, len(rows), 50):
            response = httpx.post(f"{url}/predict", json={"inputs": rows[i : i + 50].tolist()}, timeout=TIMEOUT)
            assert response.status_code == 200
        return httpx.get(f"{url}/drift", timeout=TIMEOUT).json(), metrics(url)

    report, families = serve_and_report(x)
    assert report["rows"] == len(x) and report["available"] and not report["drifted"]
    assert report["max_abs_z"] < report["threshold"] and sample(families, "mlkit_drift_drifted") == 0
    report, families = serve_and_report(x + 8)
    assert report["drifted"] and report["max_abs_z"] > report["threshold"] and report["rows"] >= report["min_rows"]
    assert report["largest"][0]["z"] > 0 and sample(families, "mlkit_drift_drifted") == 1
    assert sample(families, "mlkit_drift_max_abs_z") == pytest.approx(report["max_abs_z"])


def test_a_regression_artifact_answers_values(servers, artifacts):
    url = servers["regression"].url
    rows = np.linspace(-3, 3, 11, dtype=np.float32)[:, None]
    response = httpx.post(f"{url}/predict", json={"inputs": rows.tolist()}, timeout=TIMEOUT)
    assert response.status_code == 200 and set(response.json()) == {"values"}
    regressor = mlkit.load_predictor(artifacts["regression"])
    padded = np.concatenate([rows, np.zeros((64 - len(rows), 1), np.float32)])
    np.testing.assert_array_equal(np.float32(response.json()["values"]), regressor.predict(padded)[: len(rows)])
    np.testing.assert_allclose(response.json()["values"], regressor.predict(rows), rtol=0, atol=1e-5)
    meta = httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()
    assert meta["task"] == "regression" and meta["output"] == ["values"] and meta["num_features"] == 1


def test_a_text_artifact_answers_raw_texts_as_its_predictor_does(servers, artifacts):
    """The server tokenizes as the artifact's own predictor does; a number row or an empty text is a 422."""
    url = servers["text"].url
    texts = ["I want my money back", "Great phone, works perfectly", "the battery died after a week!"] * 4
    response = httpx.post(f"{url}/predict", json={"inputs": texts}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    local = mlkit.load_predictor(artifacts["reviews"])
    assert response.json()["labels"] == local.predict(texts).tolist()
    np.testing.assert_allclose(response.json()["probabilities"], local.predict_proba(texts), rtol=0, atol=1e-6)
    for body, words in (
        ({"inputs": [[0.0] * 40]}, '{"inputs": ["a text", ...]}'),
        ({"inputs": ["fine", "  ...  "]}, "Text 1"),
        ({"inputs": ["fine", 3]}, "Expected"),
    ):
        refused = httpx.post(f"{url}/predict", json=body, timeout=TIMEOUT)
        assert refused.status_code == 422 and words in refused.json()["error"], refused.text
    meta = httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()
    assert meta["input"] == {"shape": ["n"], "dtype": "string", "max_words": local.tokenizer.max_len}
    assert '["a text", ...]' in meta["request"] and meta["labels"] == ["negative", "positive"]
    schema = httpx.get(f"{url}/openapi.json", timeout=TIMEOUT).json()["paths"]["/predict"]["post"]["requestBody"]
    assert schema["content"]["application/json"]["example"] == {"inputs": ["I want my money back"]}
    assert httpx.get(f"{url}/drift", timeout=TIMEOUT).json()["available"] is False  # ids have no training mean
    families = metrics(url)  # and /metrics says "unknown", not "no drift"
    assert math.isnan(sample(families, "mlkit_drift_drifted")) and math.isnan(sample(families, "mlkit_drift_max_abs_z"))
    assert "mlkit_drift_z" not in families or not families["mlkit_drift_z"]
    assert "(classification, texts of up to 40 words, max batch 8," in servers["text"].ready_line


def test_the_load_generator_sends_texts_to_a_text_server(servers, tmp_path, capsys):
    url = servers["text"].url
    result = load.run(url, concurrency=2, duration=10.0, max_requests=30, rows=["fine", "awful, broke at once"])
    assert result.ok == 30 and not result.errors, result
    with pytest.raises(ValueError, match="reads texts"):  # no rows: /metadata has none to make up
        load.run(url, concurrency=1, duration=1.0, max_requests=1)
    with pytest.raises(ValueError, match="reads texts; these rows are numbers"):  # refused before any request
        load.run(url, concurrency=1, duration=1.0, max_requests=1, rows=np.zeros((2, 40)))
    digits_url = servers["main"].url
    with pytest.raises(ValueError, match="reads rows of 64 numbers; these rows are texts"):
        load.run(digits_url, concurrency=1, duration=1.0, max_requests=1, rows=["fine"])
    with pytest.raises(ValueError, match="reads rows of 64 numbers; these rows have 3"):
        load.run(digits_url, concurrency=1, duration=1.0, max_requests=1, rows=np.zeros((2, 3)))
    messages = tmp_path / "messages.txt"
    messages.write_text("I want my money back\nworks great\n")
    assert main(["load", url, "--concurrency", "2", "--max-requests", "20", "--data", str(messages)]) == 0
    assert "20 ok" in capsys.readouterr().out


def test_health_metadata_metrics_and_docs_describe_the_server(url):
    health = httpx.get(f"{url}/health", timeout=TIMEOUT)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    meta = httpx.get(f"{url}/metadata", timeout=TIMEOUT).json()
    assert meta["task"] == "classification" and meta["labels"] == list(range(10)) and meta["num_features"] == 64
    assert meta["server"]["max_batch"] == 16 and meta["server"]["max_wait_ms"] == 5.0 and meta["batch_shape"] == 16
    names = set(metrics(url))
    for name in ("mlkit_http_requests", "mlkit_batch_rows", "mlkit_queue_wait_seconds", "mlkit_compute_seconds"):
        assert name in names
    assert {"mlkit_queue_requests", "mlkit_drift_max_abs_z", "mlkit_http_request_seconds"} <= names
    schema = httpx.get(f"{url}/openapi.json", timeout=TIMEOUT).json()
    assert {"/predict", "/health", "/metadata", "/metrics", "/drift", "/admin/reload"} <= set(schema["paths"])
    docs = httpx.get(f"{url}/docs", timeout=TIMEOUT)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)  # every file the page loads comes from this server
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{url}{asset}", timeout=TIMEOUT).status_code == 200
    assert '"validatorUrl": null' in docs.text  # Swagger UI's online schema validator would call out


# --- the load generator, several workers -------------------------------------------------------------------------


def check_counts(result: load.LoadResult) -> None:
    assert result.sent == result.ok + sum(result.errors.values()) and result.ok > 0
    assert result.p50 <= result.p90 <= result.p99 <= result.latency_ms.max()
    assert result.throughput > 0 and len(result.queue_ms) == len(result.compute_ms) == result.ok
    assert (result.queue_ms >= 0).all() and (result.compute_ms > 0).all()


def test_the_load_generator_reports_sane_numbers_in_both_modes(url, digits):
    closed = load.run(url, concurrency=4, duration=10.0, max_requests=120, rows=digits.test.raw_x)
    check_counts(closed)
    assert closed.mode == "closed" and closed.sent == 120 and closed.errors == {}  # max_requests came first
    opened = load.run(url, rate=100, duration=1.0, rows=digits.test.raw_x, rows_per_request=3)
    check_counts(opened)
    assert opened.mode == "open" and opened.sent == 100 and len(opened.late_ms) == 100
    assert "open loop, 100 requests/s" in str(opened) and "p99" in str(opened)
    with pytest.raises(ValueError, match="exactly one of rate="):
        load.run(url, rate=10, concurrency=2)


def test_the_aiohttp_client_counts_the_same_way(url, digits):
    result = load.run(url, concurrency=4, duration=10.0, max_requests=60, rows=digits.test.raw_x, client="aiohttp")
    check_counts(result)
    assert result.sent == 60 and result.errors == {}
    with pytest.raises(ValueError, match="client must be one of aiohttp"):
        load.run(url, concurrency=1, client="requests")


def test_the_load_generator_names_what_went_wrong():
    """Nothing listening, a server that never answers, one that hangs up: every request counted once, by name."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refused = load.run(f"http://127.0.0.1:{closed_port}", concurrency=2, max_requests=4, rows=np.ones((2, 3)))
    assert refused.sent == 4 and refused.ok == 0 and refused.errors == {"ConnectError": 4}

    def serve(listener: socket.socket, hang_up: bool, stop: threading.Event) -> None:
        listener.settimeout(0.1)
        held = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if hang_up:
                conn.recv(65536)
                conn.close()
            else:
                held.append(conn)  # read nothing, answer nothing
        for conn in held:
            conn.close()

    for hang_up, name in ((False, "timeout"), (True, "ServerDisconnected")):
        stop = threading.Event()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            thread = threading.Thread(target=serve, args=(listener, hang_up, stop), daemon=True)
            thread.start()
            try:
                url = f"http://127.0.0.1:{listener.getsockname()[1]}"
                result = load.run(url, concurrency=2, max_requests=4, timeout=0.3, rows=np.ones((2, 3)))
            finally:
                stop.set()
                thread.join(5)
        assert result.sent == 4 and result.ok == 0 and result.errors == {name: 4}, (name, result.errors)


def test_the_load_command_prints_json(url):
    done = subprocess.run(
        [sys.executable, "-m", "mlkit", "load", url, "--concurrency", "2", "--duration", "0.5", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sent"] == result["ok"] + sum(result["errors"].values()) and result["ok"] > 0
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


def test_two_workers_serve_and_add_up_their_metrics(servers, predictor, digits):
    url = servers["workers"].url
    assert "2 workers" in servers["workers"].ready_line
    x = digits.test.raw_x[:40]
    responses = predict_concurrently(url, [x[i : i + 1] for i in range(len(x))], connections=40)
    assert [r.json()["labels"][0] for r in responses] == predictor.predict(x).tolist()
    families = metrics(url)
    assert sample(families, "mlkit_http_requests_total", path="/predict", status="200") == len(x)
    assert sample(families, "mlkit_rows_total") == len(x)
    for route, what in (("/admin/reload", "a reload"), ("/admin/drift/reset", "a drift reset")):
        refused = httpx.post(f"{url}{route}", timeout=TIMEOUT)  # it would reach one worker of two
        assert refused.status_code == 409 and f"2 worker processes and {what}" in refused.json()["error"]


def test_a_background_server_gets_its_key_in_a_private_file_not_on_the_command_line(artifacts, tmp_path):
    from mlkit.serve.background import Server

    key = b"0123456789abcdef-serve-test-key"
    predictor = mlkit.load_predictor(artifacts["digits"])
    signed = mlkit.save_predictor(predictor, tmp_path / "signed", key=key)
    with Server(signed, key=key) as server:
        command = " ".join(server.command())
        assert key.decode() not in command and "--key-file" in command
        key_file = Path(command.split("--key-file ")[1].split()[0])
        assert key_file.stat().st_mode & 0o077 == 0  # readable by this user only
        reply = httpx.post(f"{server.url}/predict", json={"inputs": np.zeros((2, predictor.num_features)).tolist()})
        assert reply.status_code == 200
    assert not key_file.exists()  # removed with the server
    with pytest.raises(RuntimeError, match="signature"), Server(artifacts["digits_b"], key=key):
        pass  # signed with this machine's key, not this one: refused at start
