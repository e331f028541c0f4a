"""The serving half of ``python -m mlkit bench``: mlkit's server against the servers a user would otherwise run.

One run, one machine, the same trained digits MLP (64-256-256-10), the same load:
32 concurrent clients (closed loop) from ``wrk`` when it is installed (a C client in
its own process, about a sixth of a core here), else from ``mlkit.serve.load``
(aiohttp, which holds most of a core itself), one row per request,
the same rows, a few seconds per server, every server started on 127.0.0.1 on a
free port and always stopped afterwards (every wait bounded). The servers:

* **mlkit** (``mlkit.serve.Server``, the program ``python -m mlkit serve`` runs) with
  its defaults (batching on: up to 64 rows per model call, 2 ms wait), and with
  batching off (``max_batch=1``);
* **FastAPI + ONNX Runtime**, one model call per request, written here as a user
  would write it (:data:`FASTAPI_APP`): a pydantic request model, an
  ``onnxruntime.InferenceSession`` on mlkit's ``.onnx`` export
  (``mlkit.save_predictor(frozen, "x.onnx")``), run by uvicorn with its defaults
  (uvloop and httptools when installed, as ``uvicorn[standard]`` brings) but the
  access log off, which only helps it. Both ways a user writes the endpoint are
  measured, ``async def`` (the model called on the event loop) and plain ``def``
  (FastAPI runs it on its thread pool), and ``async def`` once more with ONNX
  Runtime told to use one thread (``intra_op_num_threads=1``): its default, a thread
  per core that spins while it waits for work, takes a core from everything else on
  a small machine, and one thread is what a user who tuned it would choose;
* **LitServe** with batching (:data:`LITSERVE_APP`: the same ONNX Runtime session,
  ``max_batch_size=64``, ``batch_timeout=2 ms``, like mlkit's defaults), when the
  ``litserve`` package is installed (``pip install -e '.[serve-bench]'``); otherwise it
  is reported as skipped.

The target compares mlkit's defaults with the BEST of these baselines. The rounds are
interleaved (every server once, then every server again, ...), so a machine that gets
busier in the middle slows them all alike, and each server's numbers are the median
round, with the spread (lowest and highest) kept. Every server is a single process
with one event loop; "client busy" says how much of a core the load generator used.

Batching is also measured where the model, not HTTP, is the cost: the same artifact
served with ``model_delay_ms`` (each model call sleeps that long more, as a bigger
model would take), batching on against off.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import mlkit
from mlkit import bench
from mlkit.serve import Server, load
from mlkit.serve.background import wait_for_ok

CLIENTS = 32
DELAY_MS = 2.0  # the model-dominated case: every model call takes this much longer
START_TIMEOUT = 120.0  # seconds a server may take to answer its first request
MLKIT = "mlkit server, defaults (batching on: max batch 64, wait 2 ms)"
MLKIT_NO_WAIT = "mlkit server, batching on, --max-wait-ms 0"
MLKIT_OFF = "mlkit server, batching off (--max-batch 1)"
FASTAPI_ASYNC = "FastAPI + ONNX Runtime, async def"
FASTAPI_ASYNC_1 = "FastAPI + ONNX Runtime, async def, 1 ORT thread"
FASTAPI_SYNC = "FastAPI + ONNX Runtime, def"
LITSERVE = "LitServe + ONNX Runtime, batching (max 64, 2 ms)"
BASELINES = (FASTAPI_ASYNC, FASTAPI_ASYNC_1, FASTAPI_SYNC, LITSERVE)

FASTAPI_APP = """
import sys

import numpy as np
import onnxruntime
from fastapi import FastAPI
from pydantic import BaseModel

options = onnxruntime.SessionOptions()
if sys.argv[4] != "default":
    options.intra_op_num_threads = int(sys.argv[4])  # ONNX Runtime's own threads: by default one per core
session = onnxruntime.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
app = FastAPI()


class Rows(BaseModel):
    inputs: list[list[float]]


def answer(rows: Rows) -> dict:
    probabilities = session.run(None, {"x": np.asarray(rows.inputs, dtype=np.float32)})[0]
    return {"labels": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}


if sys.argv[3] == "async":
    @app.post("/predict")
    async def predict(rows: Rows) -> dict:
        return answer(rows)
else:
    @app.post("/predict")
    def predict(rows: Rows) -> dict:
        return answer(rows)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""

LITSERVE_APP = """
import sys

import litserve as ls
import numpy as np
import onnxruntime


class Digits(ls.LitAPI):
    def setup(self, device):
        self.session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])

    def decode_request(self, request):
        return np.asarray(request["inputs"], dtype=np.float32)

    def batch(self, inputs):
        return np.concatenate(inputs)

    def predict(self, x):
        return self.session.run(None, {"x": x})[0]

    def unbatch(self, output):
        return [output[i : i + 1] for i in range(len(output))]

    def encode_response(self, probabilities):
        return {"labels": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}


if __name__ == "__main__":
    api = Digits(max_batch_size=64, batch_timeout=0.002)
    server = ls.LitServer(api, accelerator="cpu", fast_queue=sys.argv[3] == "fast")
    server.run(host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", generate_client_file=False)
"""


def installed(name: str) -> bool:
    """Whether ``name`` imports here (the optional peers are measured only then, never installed)."""
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 now (for servers that cannot be told to pick one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Program:
    """A baseline server: a Python program in a child process (its own process group), stopped on exit."""

    def __init__(self, name: str, code: str, args: list[str], folder: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = folder / f"server_{len(list(folder.glob('server_*.py')))}.py"
        script.write_text(code)
        self.log = folder / f"{script.stem}.log"
        self.command = [sys.executable, str(script), args[0], str(self.port), *args[1:]]
        self.process: subprocess.Popen | None = None

    def start(self) -> Program:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.log.parent
            )
        return self

    def wait_ready(self, row: list[float], timeout: float = START_TIMEOUT) -> None:
        """Until a POST /predict with one row answers 200 (bounded); RuntimeError with the server's log if not."""

        def answer(client: httpx.Client) -> httpx.Response:
            return client.post(f"{self.url}/predict", json={"inputs": [row]})

        last = wait_for_ok(answer, time.monotonic() + timeout, self.process)
        if last is None:
            return
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s ({last}).\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, then SIGKILL after ``timeout`` s (LitServe has child processes)."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def _row(result: load.LoadResult, name: str, **extra: Any) -> dict:
    return {
        "server": name,
        "req/s": result.throughput,
        "p50 ms": result.p50,
        "p90 ms": result.p90,
        "p99 ms": result.p99,
        "errors": sum(result.errors.values()),
        "sent": result.sent,
        "client busy": result.client_cpu_s / result.duration_s if result.duration_s > 0 else math.nan,
        **extra,
    }


def _summary(name: str, rounds: list[dict]) -> dict:
    """The median round of a server (by req/s), with every round's req/s and p99 kept."""
    ordered = sorted(rounds, key=lambda r: r["req/s"])
    median = ordered[len(ordered) // 2]
    rates = [r["req/s"] for r in rounds]
    return {
        **median,
        "server": name,
        "rounds": len(rounds),
        "req/s min": min(rates),
        "req/s max": max(rates),
        "errors": sum(r["errors"] for r in rounds),
        "all req/s": rates,
        "all p99 ms": [r["p99 ms"] for r in rounds],
    }


@contextlib.contextmanager
def _started(servers: dict[str, Server | Program], row: list[float]) -> Iterator[dict[str, str]]:
    """Start every server together (each spends its first seconds importing); always stop them all."""

    def start(server: Server | Program) -> str:
        server.start()
        if isinstance(server, Program):
            server.wait_ready(row)
        assert server.url is not None
        return server.url

    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            futures = {name: pool.submit(start, server) for name, server in servers.items()}
            urls = {name: future.result() for name, future in futures.items()}
        yield urls
    finally:
        for server in servers.values():
            server.stop()


def measure(
    urls: dict[str, str], rows: np.ndarray, rounds: int, duration: float, warmup: float
) -> dict[str, list[dict]]:
    """Every server, ``rounds`` times in turns, ``duration`` s each at ``CLIENTS`` clients (after one warm-up),
    with wrk when it is installed, else with :mod:`mlkit.serve.load`."""
    seen: dict[str, list[dict]] = {name: [] for name in urls}
    send = _wrk if shutil.which("wrk") else _aiohttp
    for url in urls.values():
        send(url, rows, warmup, "warm-up")
    for _ in range(rounds):
        for name, url in urls.items():
            seen[name].append(send(url, rows, duration, name))
    return seen


def load_generator() -> str:
    """The client :func:`measure` uses, in words."""
    if shutil.which("wrk"):
        return f"wrk (C, 1 thread, {CLIENTS} connections, a separate process)"
    return f"mlkit.serve.load (aiohttp, {CLIENTS} clients, in this process; apt-get install wrk for a lighter client)"


def _aiohttp(url: str, rows: np.ndarray, duration: float, name: str) -> dict:
    return _row(load.run(url, concurrency=CLIENTS, duration=duration, rows=rows), name)


# wrk's Lua hooks: each request posts the next of the bodies; at the end, one line of JSON with the numbers.
WRK_SCRIPT = """
local bodies, i = {BODIES}, 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests": %d, "us": %d, "socket_errors": %d, "non2xx": %d, '
    .. '"p50": %d, "p90": %d, "p99": %d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _wrk(url: str, rows: np.ndarray, duration: float, name: str) -> dict:
    """One closed-loop run of wrk against ``url``'s /predict: its throughput, latency percentiles and errors
    (wrk counts whole seconds, so ``duration`` is rounded, to at least 1 s)."""
    bodies = [json.dumps({"inputs": [r.tolist()]}) for r in rows[: load.MAX_BODIES]]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.replace("{BODIES}", "{" + ", ".join(json.dumps(b) for b in bodies) + "}"))
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            ["wrk", "-t1", f"-c{CLIENTS}", f"-d{max(round(duration), 1)}s", "-s", script.name, f"{url}/predict"],
            capture_output=True,
            text=True,
            timeout=duration + 30,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or "{" not in done.stdout:
        raise RuntimeError(f"wrk failed against {url}: {done.stderr.strip() or done.stdout.strip()}")
    numbers = json.loads(done.stdout[done.stdout.rindex("{") :])
    seconds = numbers["us"] / 1e6
    errors = numbers["socket_errors"] + numbers["non2xx"]
    return {
        "server": name,
        "req/s": (numbers["requests"] - numbers["non2xx"]) / seconds,
        "p50 ms": numbers["p50"] / 1e3,
        "p90 ms": numbers["p90"] / 1e3,
        "p99 ms": numbers["p99"] / 1e3,
        "errors": errors,
        "sent": numbers["requests"],
        "client busy": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds,
    }


def settings(quick: bool) -> dict:
    if quick:
        return {"rounds": 1, "duration": 0.4, "warmup": 0.2, "delay_duration": 0.4, "all": False}
    return {"rounds": 3, "duration": 1.0, "warmup": 0.3, "delay_duration": 1.0, "all": True}


def serving_rows(trained: mlkit.MLP, data: Any, quick: bool = False) -> dict:
    """The serving comparison for the network ``trained`` on ``data``; see the module doc.

    ``quick``: one short round of mlkit's defaults against the strongest FastAPI baseline, and the batching
    comparison; the other rows (batching off, no wait, the other baselines, LitServe) only in full mode.
    """
    s = settings(quick)
    began = time.perf_counter()
    rows = np.asarray(data.test.raw_x, np.float32)
    row = rows[0].tolist()
    onnx = installed("onnxruntime") and installed("jax2onnx")
    litserve = installed("litserve")
    found = {
        "onnxruntime": "measured" if onnx else "onnxruntime or jax2onnx missing: no FastAPI or LitServe baseline",
        "litserve": (
            ("measured" if s["all"] else "skipped in --quick")
            if litserve and onnx
            else "litserve not installed (pip install -e '.[serve-bench]'), skipped"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="mlkit-serve-bench-") as tmp:
        folder = Path(tmp)
        frozen = mlkit.freeze(trained, data)
        artifact = mlkit.save_predictor(frozen, folder / "artifact")
        servers: dict[str, Server | Program] = {MLKIT: Server(artifact, start_timeout=START_TIMEOUT)}
        if s["all"]:
            servers[MLKIT_NO_WAIT] = Server(artifact, start_timeout=START_TIMEOUT, max_wait_ms=0.0)
            servers[MLKIT_OFF] = Server(artifact, start_timeout=START_TIMEOUT, max_batch=1)
        if onnx:
            model = str(mlkit.save_predictor(frozen, folder / "x.onnx"))
            fastapi = {FASTAPI_ASYNC_1: ["async", "1"]}
            if s["all"]:
                fastapi |= {FASTAPI_ASYNC: ["async", "default"], FASTAPI_SYNC: ["def", "default"]}
            for name, args in fastapi.items():
                servers[name] = Program(name, FASTAPI_APP, [model, *args], folder)
            if litserve and s["all"]:
                servers[LITSERVE] = Program(LITSERVE, LITSERVE_APP, [model, "fast"], folder)
        delayed = {
            "on": Server(artifact, start_timeout=START_TIMEOUT, model_delay_ms=DELAY_MS),
            "off": Server(artifact, start_timeout=START_TIMEOUT, model_delay_ms=DELAY_MS, max_batch=1),
        }
        with _started({**servers, **{f"delay {k}": v for k, v in delayed.items()}}, row) as urls:
            seen = measure({name: urls[name] for name in servers}, rows, s["rounds"], s["duration"], s["warmup"])
            heavy = measure({k: urls[f"delay {k}"] for k in delayed}, rows, 1, s["delay_duration"], s["warmup"])
    table = [_summary(name, rounds) for name, rounds in seen.items()]
    batching = [_summary(f"mlkit, model call +{DELAY_MS:g} ms, batching {k}", heavy[k]) for k in delayed]
    return {
        "table": table,
        "batching": batching,
        "found": found,
        "clients": CLIENTS,
        "load generator": load_generator(),
        "settings": s,
        "seconds": time.perf_counter() - began,
    }


COLUMNS = ("server", "req/s", "req/s min", "req/s max", "p50 ms", "p90 ms", "p99 ms", "errors", "client busy")


def _shown(rows: list[dict]) -> list[dict]:
    """Requests per second as whole numbers, for the printed table (the JSON keeps them exact)."""
    whole = ("req/s", "req/s min", "req/s max")
    return [{k: round(v) if k in whole and math.isfinite(v) else v for k, v in r.items()} for r in rows]


def describe(serving: dict) -> str:
    """The section as ``python -m mlkit bench`` prints it."""
    s = serving["settings"]
    found = "; ".join(f"{name} {what}" for name, what in serving["found"].items())
    return (
        f"Serving: the digits MLP over HTTP on 127.0.0.1, {serving['clients']} concurrent clients (closed loop), "
        f"1 row per request, {s['rounds']} interleaved round(s) of {s['duration']:g} s per server (median round; "
        f"min and max of the rounds); load generator: {serving.get('load generator', 'mlkit.serve.load')}, "
        f"client busy: its share of a core\n"
        + bench.table(_shown(serving["table"]), COLUMNS)
        + f"\nBatching where the model dominates (each model call {DELAY_MS:g} ms longer, --model-delay-ms):\n"
        + bench.table(_shown(serving["batching"]), COLUMNS)
        + f"\nPeers: {found}"
    )


def ratios(serving: dict | None) -> list[tuple[str, float, str]]:
    """(name, value, target) of the serving targets; NaN where a part was not measured."""
    rows = {r["server"]: r for r in (serving or {}).get("table", [])}
    best = max((rows[name]["req/s"] for name in BASELINES if name in rows), default=math.nan)
    best_name = max((name for name in BASELINES if name in rows), key=lambda n: rows[n]["req/s"], default="none")
    mlkit_rate = rows.get(MLKIT, {}).get("req/s", math.nan)
    heavy = {r["server"].rsplit(" ", 1)[-1]: r["req/s"] for r in (serving or {}).get("batching", [])}
    return [
        (
            f"mlkit server req/s / best baseline req/s ({CLIENTS} clients, 1 row each; best: {best_name})",
            mlkit_rate / best,
            ">= 3",
        ),
        (
            f"mlkit batching on / off, req/s, when each model call takes {DELAY_MS:g} ms more",
            heavy.get("on", math.nan) / heavy.get("off", math.nan),
            ">= 3",
        ),
    ]
