"""What the server counts, in Prometheus's text format (GET /metrics).

Every name starts with ``mlkit_``:

- ``mlkit_http_requests_total{path,status}`` and ``mlkit_http_request_seconds{path}``:
  every request, by route and status code, and how long the server took to answer;
- ``mlkit_batch_rows``: rows per model call (a histogram: are batches forming?);
- ``mlkit_queue_wait_seconds`` (per request: queued until its first model call starts)
  against ``mlkit_compute_seconds`` (per model call): where the time goes;
- ``mlkit_queue_requests`` / ``mlkit_queue_rows``: what is waiting now;
- ``mlkit_rows_total``, ``mlkit_reloads_total{result}``, ``mlkit_model_loaded_timestamp_seconds``;
- ``mlkit_drift_rows``, ``mlkit_drift_max_abs_z``, ``mlkit_drift_drifted`` and
  ``mlkit_drift_z{feature}`` (see :mod:`mlkit.serve.drift`); for a model with no training statistics to
  compare with (a text model's token ids) the first two are NaN and there are no per-feature gauges.

With several worker processes, each process writes its numbers to files in the
directory named by ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode, set up by :mod:`mlkit.serve.runner`), and /metrics, whichever worker
answers, adds them up: counters and histograms are totals over the workers,
queue gauges are summed over the live workers, and each drift gauge carries a
``pid`` label, since every worker watches its own share of the traffic.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from mlkit.serve.batcher import BatchStats
from mlkit.serve.drift import DriftWatch

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
DRIFT_EVERY_S = 0.5  # drift gauges are refreshed at most this often from the model thread, and on every scrape


def multiprocess_mode() -> bool:
    """Whether this process shares its metrics with sibling workers through files."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The server's metrics, in a registry of its own (so two servers in one process do not collide)."""

    def __init__(self) -> None:
        self.shared = multiprocess_mode()
        self.registry: CollectorRegistry | None = None if self.shared else CollectorRegistry()
        reg = self.registry
        if reg is not None:
            ProcessCollector(registry=reg)  # the server process's CPU seconds, memory, open files
        self.requests = Counter(
            "mlkit_http_requests", "HTTP requests answered, by route and status code", ["path", "status"], registry=reg
        )
        self.latency = Histogram(
            "mlkit_http_request_seconds", "Time to answer a request, by route", ["path"], buckets=SECONDS, registry=reg
        )
        self.batch_rows = Histogram("mlkit_batch_rows", "Rows in each model call", buckets=ROWS, registry=reg)
        self.queue_wait = Histogram(
            "mlkit_queue_wait_seconds", "Per request: queued until its first model call", buckets=SECONDS, registry=reg
        )
        self.compute = Histogram("mlkit_compute_seconds", "Duration of each model call", buckets=SECONDS, registry=reg)
        self.rows = Counter("mlkit_rows", "Rows answered", registry=reg)
        self.queue_requests = Gauge(
            "mlkit_queue_requests", "Requests waiting for the model", registry=reg, multiprocess_mode="livesum"
        )
        self.queue_rows = Gauge(
            "mlkit_queue_rows", "Rows waiting for the model", registry=reg, multiprocess_mode="livesum"
        )
        self.reloads = Counter("mlkit_reloads", "Model reloads, by result", ["result"], registry=reg)
        self.loaded = Gauge(
            "mlkit_model_loaded_timestamp_seconds",
            "When the model being served was loaded (Unix time)",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.drift_rows = _gauge("mlkit_drift_rows", "Rows seen by the drift watch", reg)
        self.drift_max = _gauge("mlkit_drift_max_abs_z", "Largest |z| of the served mean over features", reg)
        self.drift_flag = _gauge("mlkit_drift_drifted", "1 when the largest |z| passes the threshold", reg)
        self.drift_z = _gauge("mlkit_drift_z", "Served mean minus training mean, in training std", reg, ("feature",))
        self._drift_refreshed = 0.0
        self._request_children: dict[tuple[str, int], tuple] = {}  # (path, status) -> (counter, histogram)

    def request(self, path: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and its time (the labelled children are looked up once)."""
        children = self._request_children.get((path, status))
        if children is None:
            children = self._request_children[path, status] = (
                self.requests.labels(path, str(status)),
                self.latency.labels(path),
            )
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, stats: BatchStats) -> None:
        """Record one model call (called from the batcher)."""
        self.batch_rows.observe(stats.rows)
        self.compute.observe(stats.compute_s)
        self.rows.inc(stats.rows)
        for wait in stats.queue_s:
            self.queue_wait.observe(wait)

    def queue(self, requests: int, rows: int) -> None:
        self.queue_requests.set(requests)
        self.queue_rows.set(rows)

    def drift(self, watch: DriftWatch, *, force: bool = False) -> None:
        """Copy the drift watch into the gauges (throttled unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._drift_refreshed < DRIFT_EVERY_S:
            return
        self._drift_refreshed = now
        report = watch.report(top=0)
        self.drift_rows.set(report["rows"])
        if not report["available"]:  # nothing to compare with (token ids, kind "none"): unknown, not "no drift"
            self.drift_max.set(math.nan)
            self.drift_flag.set(math.nan)
            return
        self.drift_max.set(report["max_abs_z"])
        self.drift_flag.set(1.0 if report["drifted"] else 0.0)
        for feature, z in enumerate(np.asarray(watch.z(), float).tolist()):
            self.drift_z.labels(str(feature)).set(z)

    def exposition(self) -> bytes:
        """The text a Prometheus scrape reads: this server's metrics (all workers' in multiprocess mode)."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


def _gauge(name: str, documentation: str, registry: CollectorRegistry | None, labels: tuple[str, ...] = ()) -> Gauge:
    """A per-worker gauge: in multiprocess mode each live worker's value is kept apart (a ``pid`` label)."""
    return Gauge(name, documentation, labels, registry=registry, multiprocess_mode="liveall")
