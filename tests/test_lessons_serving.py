"""Lesson 13's helpers and dashboard, against real servers on 127.0.0.1, driven one control at a time.

Every server is a child process (``mlkit.serve.Server``) stopped at the end of the module, also when a
test fails. The tests check what was sent, answered and counted, never how fast.
"""

from __future__ import annotations

import contextlib

import httpx
import numpy as np
import pytest

import mlkit
from mlkit.lessons import serving
from mlkit.serve import LoadResult, Server

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, digits):
    model = mlkit.MLP(digits.num_features, (32,), digits.num_classes, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=2, progress=False))
    return mlkit.save_predictor(mlkit.freeze(model, digits), tmp_path_factory.mktemp("lesson13") / "digits")


@pytest.fixture(scope="module")
def servers(artifact):
    made = {
        "batching": Server(artifact, max_batch=8, max_wait_ms=2.0, model_delay_ms=5.0),
        "slow": Server(artifact, max_batch=1, model_delay_ms=20.0),  # at most 50 answers a second
        "tiny": Server(artifact, max_batch=1, max_queue=2, model_delay_ms=300.0),
        "handed": Server(artifact, max_batch=1, model_delay_ms=5.0),  # given to a dashboard, which stops it
    }
    with contextlib.ExitStack() as stack:
        for server in made.values():
            stack.callback(server.stop)
        serving.start_all(*made.values())
        yield made


def png(lab) -> bytes:
    return bytes(lab.image.value)


def fake_point(rate: float, p99: float, ok: int | None = None, errors: dict | None = None) -> serving.Point:
    """A Point for the pure helpers: ``ok`` answers in one second, every latency ``p99``."""
    ok = int(rate) if ok is None else ok
    latency = np.full(ok, p99)
    result = LoadResult(
        "http://127.0.0.1:1", "open", rate, 1, 1.0, ok + sum((errors or {}).values()), ok, errors or {},
        latency, latency * 0, latency * 0, latency * 0 + 1, latency * 0,
    )  # fmt: skip
    return serving.Point(rate, 1, 2.0, result, serving.Counts(ok, ok, {}, {"200": ok}))


# ---------------------------------------------------------------- pure helpers


def test_knee_is_the_last_rate_before_p99_first_passes_the_target():
    points = [fake_point(25, 20.0), fake_point(50, 30.0), fake_point(100, 500.0), fake_point(200, 40.0)]
    assert serving.knee(points, slo_ms=100) == 50  # 200 came back under, but the knee had already passed
    assert serving.knee(points[::-1], slo_ms=100) == 50  # order does not matter
    assert serving.knee(points, slo_ms=10) is None
    assert serving.knee(points, slo_ms=1000) == 200


def test_a_point_is_behind_when_answers_lag_the_arrivals_or_some_failed():
    assert not fake_point(100, 20.0, ok=90).behind
    assert fake_point(100, 20.0, ok=70).behind
    assert fake_point(100, 20.0, ok=100, errors={"503": 1}).behind


def test_counts_subtract_to_what_happened_in_between():
    before = serving.Counts(3, 10, {1.0: 2, 2.0: 3}, {"200": 3})
    after = serving.Counts(5, 14, {1.0: 3, 2.0: 5}, {"200": 4, "503": 2})
    delta = after - before
    assert (delta.calls, delta.rows, delta.by_size, delta.requests) == (2, 4, {1.0: 1, 2.0: 2}, {"200": 1, "503": 2})
    assert delta.rows_per_call == 2 and np.isnan(serving.Counts(0, 0, {}, {}).rows_per_call)


# ---------------------------------------------------------------- against servers


def test_measure_counts_every_request_and_its_model_calls(servers, digits):
    server = servers["batching"]
    opened = serving.measure(server, digits.test.raw_x, rate=50, duration=0.5)
    assert opened.result.mode == "open" and opened.rate == 50 and (opened.max_batch, opened.max_wait_ms) == (8, 2.0)
    assert opened.result.sent == opened.result.ok == opened.counted.rows == 25
    assert opened.counted.requests == {"200": 25} and 1 <= opened.rows_per_call <= 8
    assert "50/s" in str(opened) and "rows per model call" in str(opened)
    closed = serving.measure(server, digits.test.raw_x, concurrency=8, duration=10, max_requests=80)
    assert closed.result.mode == "closed" and not closed.behind and "8 clients" in str(closed)
    assert closed.result.ok == closed.counted.rows == 80 and closed.counted.calls < 80  # 8 clients share calls
    assert closed.counted.by_size[8.0] == closed.counted.calls  # no call over max batch


def test_rate_sweep_stops_after_the_first_rate_the_server_fell_behind(servers, digits):
    points = serving.rate_sweep(servers["slow"], (200, 10, 100), digits.test.raw_x, duration=0.5)
    assert [p.rate for p in points] == [10, 100]  # lowest first; 100/s is twice what 20 ms per call can answer
    assert not points[0].behind and points[1].behind and points[1].throughput <= 50 * 1.01
    assert all(p.rows_per_call == 1 for p in points)


def test_a_burst_fills_a_tiny_queue_and_the_rest_are_refused(servers, digits):
    url = servers["tiny"].url
    before = serving.counts(url)
    answers = serving.burst(url, digits.test.raw_x[:8])
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {200, 503}
    assert all(r.headers["retry-after"] == "1" for r in answers if r.status_code == 503)
    assert (serving.counts(url) - before).requests == {str(s): statuses.count(s) for s in set(statuses)}
    labels = [r.json()["labels"][0] for r in answers if r.status_code == 200]
    assert set(labels) <= set(range(10))


def test_drift_z_reads_every_feature_and_agrees_with_the_report(servers, digits):
    url = servers["batching"].url
    for rows, drifted in ((digits.test.raw_x, False), (digits.test.raw_x + 8, True)):
        assert httpx.post(f"{url}/admin/drift/reset", timeout=TIMEOUT).status_code == 200
        labels = serving.post_rows(url, rows, per_request=40)
        report = httpx.get(f"{url}/drift", timeout=TIMEOUT).json()
        z = serving.drift_z(url)
        assert len(labels) == len(rows) and report["rows"] == len(rows) and report["drifted"] is drifted
        assert z.shape == (digits.num_features,) and np.abs(z).max() == pytest.approx(report["max_abs_z"])


def test_start_all_stops_every_server_when_one_fails(artifact, tmp_path):
    good, bad = Server(artifact, start_timeout=90), Server(tmp_path / "no-such-artifact", start_timeout=90)
    try:
        with pytest.raises(RuntimeError, match="no-such-artifact"):
            serving.start_all(good, bad)
        assert good.process is not None and good.process.poll() is not None  # started, then stopped again
    finally:
        good.stop()
        bad.stop()


# ---------------------------------------------------------------- the dashboard


def test_serving_lab_keeps_one_server_per_setting_and_stops_them(artifact, digits, servers):
    handed = servers["handed"]  # max batch 1, max wait 2 ms: handed in, so that setting starts nothing
    seeded = serving.rate_sweep(handed, (10,), digits.test.raw_x, duration=0.3)
    lab = serving.serving_lab(
        artifact,
        digits.test.raw_x,
        model_delay_ms=5.0,
        duration=0.3,
        max_requests=30,
        servers={(1, 2.0): handed},
        points=seeded,
    )
    try:
        lab.refresh()  # rate 100, max batch 32, max wait 2 ms: a new server
        first, status = png(lab), lab.status_text
        assert (lab.result.rate, lab.result.max_batch, lab.result.max_wait_ms) == (100, 32, 2.0)
        assert set(lab.servers) == {(1, 2.0), (32, 2.0)} and "started its server" in status
        assert lab.result.result.ok == lab.result.counted.rows > 0 and "100 requests/s" in status
        pid = lab.servers[(32, 2.0)].pid

        lab.set_value("rate", 25)  # only the rate: the same server, measured again
        assert lab.servers[(32, 2.0)].pid == pid and lab.started_s is None and "started" not in lab.status_text
        assert lab.result.rate == 25 and png(lab) != first
        batching_lines = [line for line in lab.axes[0].get_lines() if line.get_color() == "C1"]
        assert list(batching_lines[0].get_xdata()) == [25, 100]  # points accumulate, sorted by rate

        lab.set_value("max_batch", 1)  # the server it was handed
        assert lab.servers[(1, 2.0)] is handed and lab.started_s is None and lab.result.rows_per_call == 1
        assert (1, 2.0, 10.0) in lab.measured and (1, 2.0, 25.0) in lab.measured  # seeded point kept
        assert "no batching" in lab.status_text
        assert lab.stop_button in lab.sidebar()  # what a learner presses when done (else: the kernel's exit)
    finally:
        started = lab.servers.get((32, 2.0))
        lab.stop_button.click()
    assert lab.servers == {} and started is not None and started.process is not None
    assert started.process.poll() is not None and handed.process is not None and handed.process.poll() is not None
    assert lab.status_text.startswith("stopped 2 servers")


def test_serving_lab_shows_a_server_that_cannot_start_as_an_error(tmp_path, digits):
    lab = serving.serving_lab(tmp_path / "missing", digits.test.raw_x, duration=0.2, render=False)
    lab.refresh()
    assert lab.status_text.startswith("error:") and "missing" in lab.status_text and lab.servers == {}
    lab.stop()
