"""The model server against clients that misbehave (issue #23), over real HTTP on 127.0.0.1.

Idle and slow connections, oversized headers, a full open-file table, SIGTERM under load,
workers killed again and again. Every server is a child process on a port the kernel picks;
every wait is bounded and every process is stopped, also when a test fails. Times in the
assertions are generous behaviour bounds, never speed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mlkit
from mlkit.serve import Server
from mlkit.serve.runner import WATCH

TIMEOUT = 30.0
IDLE_S = 2.0  # the idle timeout of the guarded server


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, digits):
    model = mlkit.MLP(64, (16,), 10, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=1, progress=False))
    return mlkit.save_predictor(mlkit.freeze(model, digits), tmp_path_factory.mktemp("hostile") / "digits")


@pytest.fixture(scope="module")
def guarded(artifact):
    with Server(artifact, start_timeout=90, idle_timeout_s=IDLE_S) as server:
        yield server


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def answers(url: str) -> tuple[int, int]:
    """The statuses of one /health and one /predict, each on a new connection."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        health = client.get(f"{url}/health").status_code
        predict = client.post(f"{url}/predict", json={"inputs": [[0.0] * 64]}).status_code
    return health, predict


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (whatever it said first is read and dropped)."""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


@contextlib.contextmanager
def connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    try:
        made += [socket.create_connection(address(url), timeout=TIMEOUT) for _ in range(count)]
        yield made
    finally:
        for sock in made:
            sock.close()


def test_idle_and_slowloris_connections_are_closed_and_the_server_answers_meanwhile(guarded):
    with connections(guarded.url, 200) as idle, connections(guarded.url, 20) as slow:
        for sock in slow:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        assert answers(guarded.url) == (200, 200)
        deadline = time.monotonic() + IDLE_S + 8  # generous: the bound is IDLE_S
        open_ = list(idle + slow)
        while open_ and time.monotonic() < deadline:
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"X")  # one header byte at a time, which resets uvicorn's own keep-alive timer
            open_ = [sock for sock in open_ if not closed_by_server(sock)]
            time.sleep(0.5)
        assert not open_, f"{len(open_)} of 220 idle or slow connections still open"
    assert answers(guarded.url) == (200, 200)


def test_a_slow_request_hears_408_and_an_idle_keep_alive_connection_is_closed(guarded):
    with connections(guarded.url, 1) as (sock,):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never the blank line that ends the headers
        sock.settimeout(IDLE_S + 8)
        assert sock.recv(100).startswith(b"HTTP/1.1 408 ")
    with connections(guarded.url, 1) as (sock,):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(IDLE_S + 8)
        reply = b""
        while chunk := sock.recv(65536):  # the answer, then the end of the connection
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ")


def test_an_oversized_header_gets_431_and_is_not_buffered(guarded):
    rss = rss_kb(guarded.pid)
    with connections(guarded.url, 1) as (sock,):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, chunk = 0, b"a" * 1_000_000
        with contextlib.suppress(OSError):  # the server closes while this writes: a reset, as it should
            while sent < 50_000_000:
                sock.sendall(chunk)
                sent += len(chunk)
        assert sent < 50_000_000, "the server read 50 MB of one header"
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")
    assert rss_kb(guarded.pid) - rss < 20_000
    assert answers(guarded.url) == (200, 200)


def rss_kb(pid: int | None) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def test_more_idle_connections_than_open_files_allow_still_leave_health_and_predict_answering(artifact):
    """Open files limited to 256: 300 idle connections would fill the table, and accept() refuse everyone."""
    command = ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh", *Server(artifact).command()]
    env = {**os.environ, WATCH: "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) as process:
        try:
            assert process.stdout is not None
            found = re.search(r"http://\S+", process.stdout.readline().decode())
            assert found, "no ready line"
            url = found.group(0)
            with connections(url, 300) as idle:
                assert answers(url) == (200, 200)
                assert sum(closed_by_server(sock) for sock in idle) > 0  # the oldest idle made room
                assert len(os.listdir(f"/proc/{process.pid}/fd")) < 256
        finally:
            process.terminate()
            process.wait(TIMEOUT)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_health_503_answers_every_request_then_exits_0(artifact, workers):
    """Keep-alive load from threads; SIGTERM; /health turns 503 while every request is still answered."""
    server = Server(artifact, start_timeout=90, workers=workers, drain_s=3.0, model_delay_ms=20.0)
    server.start()
    sent: list[tuple[float, int | str]] = []  # when each request went out, and its status or error
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:  # one keep-alive connection
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status: int | str = client.post(f"{server.url}/predict", json={"inputs": [[0.0] * 64]}).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                sent.append((started, status))

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        health = []
        while time.monotonic() < signalled + 2.0:  # inside the 3 s drain
            health.append(httpx.get(f"{server.url}/health", timeout=TIMEOUT).status_code)
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT)
        code = server.process.wait(TIMEOUT)
    finally:
        stop.set()
        server.stop()
    before = [status for started, status in sent if started < signalled]
    assert before and set(before) == {200}, sorted(set(map(str, before)))
    assert {status for _, status in sent} == {200}  # during the drain too: the listener still took them
    assert health and set(health) == {503}, health
    assert code == 0


def worker_pids(server: Server) -> list[int]:
    """The supervisor's worker processes (multiprocessing's spawned Pythons)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def wait_for_two_serving_workers(server: Server, gone: list[int]) -> None:
    deadline, workers, answered = time.monotonic() + 90, [], set()
    while time.monotonic() < deadline:
        assert server.process is not None and server.process.poll() is None, server.stderr()
        workers = worker_pids(server)
        if len(workers) == 2 and not set(gone) & set(workers):
            with contextlib.suppress(httpx.HTTPError):
                answered |= {httpx.get(f"{server.url}/health", timeout=5).json()["pid"] for _ in range(5)}
                if answered >= set(workers):
                    return
        time.sleep(0.2)
    raise AssertionError(f"the killed worker was not replaced: workers {workers}, /health from {answered}")


def test_the_restart_budget_is_a_rate_a_worker_killed_now_and_then_is_always_replaced(artifact):
    """At most 1 restart a second: three kill -9s, each after the last one recovered, leave it serving (a budget
    of 2 restarts in all would have ended it); both workers killed at once are 2 in a second, which stops it."""
    with Server(artifact, start_timeout=90, workers=2, restart_limit=1, restart_window_s=1.0) as server:
        assert server.process is not None
        for _ in range(3):
            victim = worker_pids(server)[0]
            os.kill(victim, signal.SIGKILL)
            wait_for_two_serving_workers(server, [victim])
            time.sleep(1.0)  # the window forgets the last restart
        assert answers(server.url) == (200, 200)
        for pid in worker_pids(server):
            os.kill(pid, signal.SIGKILL)
        assert server.process.wait(TIMEOUT) == 1
        deadline = time.monotonic() + 5
        while "keep dying" not in server.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "workers keep dying" in server.stderr()


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    curve = mlkit.load_dataset("regression_curve", n=200, seed=0)
    model = mlkit.MLP(1, (16,), 1, seed=0)
    mlkit.fit(model, curve, mlkit.TrainConfig(epochs=5, progress=False))
    return curve, mlkit.save_predictor(mlkit.freeze(model, curve), tmp_path_factory.mktemp("range") / "curve")


def test_an_input_far_outside_the_training_range_is_a_422_unless_allowed(regression, digits, artifact):
    curve, path = regression
    with Server(path, start_timeout=90) as server:
        far = httpx.post(f"{server.url}/predict", json={"inputs": [[0.5], [1e30]]}, timeout=TIMEOUT)
        assert far.status_code == 422 and "training range" in far.json()["error"], far.text
        assert "rows [1]" in far.json()["error"].lower()
        near = httpx.post(f"{server.url}/predict", json={"inputs": curve.test.raw_x.tolist()}, timeout=TIMEOUT)
        assert near.status_code == 200
    with Server(path, start_timeout=90, max_input_z=0) as server:  # allowed: the model's guess comes back
        far = httpx.post(f"{server.url}/predict", json={"inputs": [[1e30]]}, timeout=TIMEOUT)
        assert far.status_code == 200 and len(far.json()["values"]) == 1
    with Server(artifact, start_timeout=90) as server:  # every real digit is in range
        every = httpx.post(f"{server.url}/predict", json={"inputs": digits.test.raw_x.tolist()}, timeout=TIMEOUT)
        assert every.status_code == 200
