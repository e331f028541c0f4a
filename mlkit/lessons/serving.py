"""Lesson 13: a model server under load, measured from the notebook, and its dashboard.

The server is :mod:`mlkit.serve` (a child process per :class:`~mlkit.serve.Server`);
the load is :func:`mlkit.serve.load.run`. What lives here is what the lesson adds
on top: starting several servers together, one load run with the model calls it
caused (read from the server's ``/metrics``), a sweep over request rates that stops
once the server has fallen behind, the knee of a latency curve, a burst of
simultaneous requests, the drift watch's per-feature z-scores, the figures, and
:func:`serving_lab`, the dashboard. Nothing here times anything itself: every
number comes from the load generator or from what the server counted.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from prometheus_client.parser import text_string_to_metric_families

from mlkit.lessons import plots
from mlkit.lessons.explorers import LessonExplorer
from mlkit.lessons.widgets import choice_slider
from mlkit.serve import LoadResult, Server, load

SLO_MS = 100.0  # the promise the lesson's knee is measured against: p99 under a tenth of a second
RATES = (25, 50, 100, 200, 400, 800, 1600)  # requests per second the dashboard offers
MAX_BATCHES = (1, 2, 4, 8, 16, 32, 64)
MAX_WAITS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)  # milliseconds
TIMEOUT = 30.0  # seconds: the most one HTTP exchange made here may take


def start_all(*servers: Server) -> list[Server]:
    """Start ``servers`` at once (each spends its first seconds importing JAX and compiling), and return them.

    If one fails to start, every one of them is stopped and the first error is raised.
    """
    if not servers:
        return []
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(server.start) for server in servers]
        errors = [e for e in (future.exception() for future in futures) if e is not None]
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return list(servers)


def _url(server: Server) -> str:
    if server.url is None:
        raise RuntimeError(f"{server!r} is not started: call start() (or use it in a with block) first.")
    return server.url


# ---------------------------------------------------------------- what the server counted


@dataclass(frozen=True)
class Counts:
    """Totals from a server's ``/metrics`` at one moment: model calls, rows answered, requests by status code."""

    calls: int  # model calls (the count of the mlkit_batch_rows histogram)
    rows: int  # rows that went through the model
    by_size: dict[float, int]  # model calls with at most this many rows (the histogram's cumulative buckets)
    requests: dict[str, int]  # POST /predict answers by status code ("200", "503", ...)

    def __sub__(self, earlier: Counts) -> Counts:
        """What happened between ``earlier`` and this moment."""
        return Counts(
            self.calls - earlier.calls,
            self.rows - earlier.rows,
            {le: n - earlier.by_size.get(le, 0) for le, n in self.by_size.items()},
            {k: n - earlier.requests.get(k, 0) for k, n in self.requests.items() if n - earlier.requests.get(k, 0)},
        )

    @property
    def rows_per_call(self) -> float:
        return self.rows / self.calls if self.calls else float("nan")


def counts(url: str) -> Counts:
    """Read ``/metrics`` (Prometheus text) and pick out what the lesson needs."""
    text = httpx.get(f"{url}/metrics", timeout=TIMEOUT, trust_env=False).text
    calls = rows = 0.0
    by_size: dict[float, int] = {}
    requests: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mlkit_batch_rows_count":
                calls += s.value
            elif s.name == "mlkit_batch_rows_bucket":
                le = float(s.labels["le"])
                by_size[le] = by_size.get(le, 0) + int(s.value)
            elif s.name == "mlkit_rows_total":
                rows += s.value
            elif s.name == "mlkit_http_requests_total" and s.labels.get("path") == "/predict":
                requests[s.labels["status"]] = requests.get(s.labels["status"], 0) + int(s.value)
    return Counts(int(calls), int(rows), by_size, requests)


def drift_z(url: str) -> np.ndarray:
    """Every feature's z-score from the drift watch (``mlkit_drift_z{feature}`` in ``/metrics``), in feature order."""
    text = httpx.get(f"{url}/metrics", timeout=TIMEOUT, trust_env=False).text
    found = {
        int(s.labels["feature"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mlkit_drift_z"
    }
    return np.array([found[j] for j in range(len(found))])


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Point:
    """One load run against a server with these batching settings (see :func:`measure`)."""

    rate: float  # requests per second offered (open loop) or clients (closed loop: ``result.mode == "closed"``)
    max_batch: int
    max_wait_ms: float
    result: LoadResult
    counted: Counts  # what the server counted during the run

    @property
    def p50(self) -> float:
        return self.result.p50

    @property
    def p99(self) -> float:
        return self.result.p99

    @property
    def throughput(self) -> float:
        return self.result.throughput

    @property
    def rows_per_call(self) -> float:
        return self.counted.rows_per_call

    @property
    def behind(self) -> bool:
        """Open loop: the server answered clearly fewer requests per second than arrived (or failed some)."""
        return self.result.mode == "open" and (self.throughput < 0.8 * self.rate or bool(self.result.errors))

    def __str__(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.result.errors.items())) or "none"
        load = f"{self.rate:5g}/s" if self.result.mode == "open" else f"{self.rate:g} clients"
        text = (
            f"{load}  p50 {self.p50:7.1f} ms  p99 {self.p99:7.1f} ms  answered {self.throughput:5.0f}/s  "
            f"{self.rows_per_call:5.2f} rows per model call  errors {errors}"
        )
        late = self.result.percentile(99, "late_ms") if len(self.result.late_ms) else 0.0
        if late > 5:  # the load generator itself could not keep to its clock
            text += f"  (sends ran {late:.0f} ms behind the clock, p99)"
        return text


def measure(
    server: Server,
    rows: np.ndarray,
    *,
    rate: float | None = None,
    concurrency: int | None = None,
    duration: float = 1.0,
    max_requests: int = 100_000,
) -> Point:
    """One load run, one row per request, and what the server counted meanwhile.

    ``rate``: an open loop (requests due on a clock, ``rate`` per second); ``concurrency``: a closed loop
    (that many clients, each waiting for its answer before sending again). At most ``duration`` seconds and
    ``max_requests`` requests, whichever ends first; then the answers still on their way are waited for.
    """
    url = _url(server)
    before = counts(url)
    # The load generator runs in this process: a garbage collection of everything a notebook holds (JAX, flax,
    # matplotlib) during a run stops it for tens of milliseconds, and that stall would show up as server latency.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = load.run(
            url,
            rate=rate,
            concurrency=concurrency,
            duration=duration,
            max_requests=max_requests,
            rows=rows,
            timeout=TIMEOUT,
        )
    finally:
        if collecting:
            gc.enable()
    after = counts(url)
    settings = server.settings
    return Point(result.target, settings.max_batch, float(settings.max_wait_ms), result, after - before)


def rate_sweep(server: Server, rates: Iterable[float], rows: np.ndarray, **options) -> list[Point]:
    """:func:`measure` at each rate, lowest first, stopping after the first rate the server fell behind.

    Past that rate every extra request only lengthens the queue, and measuring it would take ever longer.
    ``options`` go to :func:`measure`.
    """
    points: list[Point] = []
    for rate in sorted(rates):
        points.append(measure(server, rows, rate=rate, **options))
        if points[-1].behind:
            break
    return points


def knee(points: Sequence[Point], slo_ms: float = SLO_MS) -> float | None:
    """The highest rate up to which every measured p99 stayed under ``slo_ms``; None if even the lowest did not."""
    kept = None
    for point in sorted(points, key=lambda p: p.rate):
        if not point.p99 < slo_ms:
            break
        kept = point.rate
    return kept


def burst(url: str, rows: np.ndarray, *, connections: int = 64) -> list[httpx.Response]:
    """One request per row of ``rows``, all sent at once (up to ``connections`` in flight); answers in row order."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    with (
        httpx.Client(timeout=TIMEOUT, limits=limits, trust_env=False) as client,
        ThreadPoolExecutor(min(connections, len(rows))) as pool,
    ):
        return list(pool.map(lambda row: client.post(f"{url}/predict", json={"inputs": [row.tolist()]}), rows))


def post_rows(url: str, rows: np.ndarray, per_request: int = 50) -> list:
    """``rows`` sent ``per_request`` at a time, one request after another; the labels the server answered."""
    labels: list = []
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        for i in range(0, len(rows), per_request):
            response = client.post(f"{url}/predict", json={"inputs": rows[i : i + per_request].tolist()})
            response.raise_for_status()
            labels += response.json()["labels"]
    return labels


# ---------------------------------------------------------------- figures


def _label(max_batch: int, max_wait_ms: float) -> str:
    return "no batching (max batch 1)" if max_batch == 1 else f"max batch {max_batch}, wait {max_wait_ms:g} ms"


def _limit_notes(ax: Axes, notes: Sequence[tuple[float, str, str]], levels: int = 3) -> None:
    """Write each (x, text, colour) note at the bottom of ``ax``, just right of ``x``, on the lowest of
    ``levels`` rows where it touches no earlier note (estimated from the axes' size); a note with no room is
    left out (its dotted line stays)."""
    if not notes:
        return
    size, width = 7.0, plots.axes_points(ax)[0]
    low, high = (np.log10(v) for v in ax.get_xlim())
    ends = [-np.inf] * levels  # where the last note on each row ends, in points from the left edge
    for x, text, colour in sorted(notes):
        at, wide = (np.log10(x) - low) / (high - low) * width, len(text) * 0.6 * size
        right = at + 3 + wide <= width  # beside the line, on its right unless that runs past the edge
        left = at + 3 if right else at - 3 - wide
        row = next((i for i, end in enumerate(ends) if left > end + 4), None)
        if row is None:
            continue
        ends[row] = left + wide
        ax.annotate(
            text,
            (x, 0),
            xycoords=("data", "axes fraction"),
            xytext=(3 if right else -3, 2 + row * 1.3 * size),
            textcoords="offset points",
            ha="left" if right else "right",
            va="bottom",
            fontsize=size,
            color=colour,
        )


def latency_panel(
    ax: Axes,
    curves: Mapping[str, Sequence[Point]],
    *,
    slo_ms: float = SLO_MS,
    model_ms: float | None = None,
    current: Point | None = None,
    colours: Mapping[str, str] | None = None,
) -> None:
    """p50 (solid) and p99 (dashed) latency against offered rate, one colour per curve (named by
    :func:`batch_panel`), the target as a line.

    ``model_ms``: each model call's cost; marks, per curve, the most requests per second its model calls can
    answer (max batch rows every ``model_ms``), with a note at the bottom ("1 row: ≤ 67/s").
    ``colours``: a colour per curve name (default: C0, C1, ... in order).
    """
    for i, (name, points) in enumerate(curves.items()):
        pts = sorted(points, key=lambda p: p.rate)
        if not pts:
            continue
        rates, colour = [p.rate for p in pts], (colours or {}).get(name, f"C{i}")
        ax.plot(rates, [p.p50 for p in pts], "o-", color=colour, ms=4)
        ax.plot(rates, [p.p99 for p in pts], "s--", color=colour, ms=3, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    measured = [p for points in curves.values() for p in points]
    rates = [p.rate for p in measured if p.rate > 0]
    if rates:
        ax.set_xlim(min(rates) / 1.5, max(rates) * 1.5)
    latencies = [v for p in measured for v in (p.p50, p.p99) if np.isfinite(v) and v > 0] + [slo_ms]
    ax.set_ylim(min(latencies) / 5, max(latencies) * 1.6)  # room below the curves for the notes on the limits
    target = ax.axhline(slo_ms, color="grey", ls=":", lw=1)
    if model_ms and measured:
        # The most answers per second a curve's model calls allow: max batch rows per call, one call at a time.
        notes, drawn = [], set[int]()
        for i, (name, points) in enumerate(curves.items()):
            rows = max((p.max_batch for p in points), default=0)
            limit = rows * 1000 / model_ms
            if not points or limit > ax.get_xlim()[1] or rows in drawn:  # one line per max batch
                continue
            drawn.add(rows)
            colour = (colours or {}).get(name, f"C{i}")
            ax.axvline(limit, color=colour, ls=":", lw=1)
            notes.append((limit, f"{rows} row{'s' if rows > 1 else ''}: ≤ {limit:,.0f}/s", colour))
        _limit_notes(ax, notes)
    if current is not None:
        ax.plot(current.rate, current.p99, "ko", ms=9, fillstyle="none")
    ax.set(xlabel="offered load (requests per second)", ylabel="latency (ms)", title="latency against load")
    # Curves are named in the batch panel beside this one (same colours); here what the line styles mean.
    handles = [
        Line2D([], [], color="k", ls="-", label="p50"),
        Line2D([], [], color="k", ls="--", label="p99"),
        Line2D([], [], color=target.get_color(), ls=":", label=f"target {slo_ms:g} ms"),
    ]
    if model_ms and measured:
        handles.append(Line2D([], [], color="k", ls=":", lw=1, label="max batch's limit"))
    plots.legend_on_top(ax, handles=handles)
    plots.readable(ax)


def batch_panel(
    ax: Axes,
    curves: Mapping[str, Sequence[Point]],
    *,
    model_ms: float | None = None,
    current: Point | None = None,
    colours: Mapping[str, str] | None = None,
) -> None:
    """Mean rows per model call against offered rate, one colour per curve.

    ``model_ms``: each model call's cost; draws how many requests arrive during one call (rate × cost).
    ``colours``: as for :func:`latency_panel`.
    """
    rates = sorted({p.rate for points in curves.values() for p in points})
    if model_ms and rates:
        grid = np.geomspace(rates[0], rates[-1], 50)
        largest = max(p.max_batch for points in curves.values() for p in points)
        arrivals = np.clip(grid * model_ms / 1000, 1, largest)  # a batch holds at most max batch rows
        ax.plot(grid, arrivals, color="grey", ls=":", lw=1, label=f"arrivals per call (rate × {model_ms:g} ms)")
    for i, (name, points) in enumerate(curves.items()):
        pts = sorted(points, key=lambda p: p.rate)
        if pts:
            colour = (colours or {}).get(name, f"C{i}")
            ax.plot([p.rate for p in pts], [p.rows_per_call for p in pts], "o-", color=colour, ms=4, label=name)
    if current is not None:
        ax.plot(current.rate, current.rows_per_call, "ko", ms=9, fillstyle="none")
    ax.set_xscale("log")
    if rates:
        ax.set_xlim(rates[0] / 1.5, rates[-1] * 1.5)
    ax.set_ylim(bottom=0)
    ax.set(xlabel="offered load (requests per second)", ylabel="rows per model call (mean)", title="batches formed")
    if ax.get_lines():
        plots.legend_on_top(ax, ncol=1)
    plots.readable(ax)


# ---------------------------------------------------------------- the dashboard


class ServingLab(LessonExplorer[Point]):
    """Lesson 13's dashboard: one server per (max batch, max wait) setting, kept until :meth:`stop`.

    The servers outlive a Run All, so the next slider move measures at once; they stop with the kernel
    (each :class:`~mlkit.serve.Server` stops itself when this Python process ends), or earlier with the
    "Stop servers" button or :meth:`stop`. A move after that starts a server again.
    """

    def __init__(self, *args, **kwargs):
        self.servers: dict[tuple[int, float], Server] = {}  # (max batch, max wait ms) -> its server, running
        self.measured: dict[tuple[int, float, float], Point] = {}  # (max batch, max wait ms, rate) -> last run
        self.started_s: float | None = None  # how long the last run's new server took to start; None: reused one
        self.colours: dict[str, str] = {}  # a curve keeps the colour it was first drawn in
        super().__init__(*args, **kwargs)
        self.stop_button = widgets.Button(
            description="Stop servers",
            icon="power-off",
            tooltip="Stop this dashboard's servers (they also stop with the kernel); a slider move starts one again",
        )
        self.stop_button.on_click(lambda button: self.stop())

    def refresh(self) -> None:
        key = (int(self.values["max_batch"]), float(self.values["max_wait_ms"]))
        self.show_status(
            "measuring… (about a second)"
            if key in self.servers
            else "starting a server for this max batch and max wait (a few seconds), then measuring…"
        )
        try:
            super().refresh()
        except (RuntimeError, httpx.HTTPError) as e:
            self.show_status(f"error: {e}", error=True)

    def stop(self) -> None:
        """Stop every server this dashboard holds: those it started and those it was handed."""
        stopped = len(self.servers)
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        if stopped:
            self.show_status(
                f"stopped {stopped} server{'s' if stopped > 1 else ''}; the measured points stay, "
                f"and moving a slider starts a server again"
            )

    def sidebar(self) -> list[widgets.Widget]:
        *controls, status = super().sidebar()
        return [*controls, self.stop_button, status]


def serving_lab(
    path: str | os.PathLike,
    rows: np.ndarray,
    *,
    model_delay_ms: float = 15.0,
    duration: float = 1.0,
    max_requests: int = 200,
    slo_ms: float = SLO_MS,
    servers: Mapping[tuple[int, float], Server] | None = None,
    points: Iterable[Point] = (),
    **kwargs,
) -> ServingLab:
    """Lesson 13: sliders for request rate, max batch and max wait; release to load a server with those settings.

    Each (max batch, max wait) gets its own server, started on first use and kept (until the kernel ends, or
    :meth:`ServingLab.stop`, or its "Stop servers" button), so moving only the rate measures again without a
    restart. Every run is an open loop of
    ``duration`` seconds (at most ``max_requests`` requests) sending ``rows`` one per request; ``model_delay_ms``
    is added to every model call, standing in for a bigger model. Points accumulate on the figure, one curve per
    setting; ``result`` is the last :class:`Point`.

    ``servers`` hands it running servers to use, by (max batch, max wait ms), and ``points`` measurements to show
    from the start; both must have been made with the same ``model_delay_ms``. :meth:`ServingLab.stop` stops the
    servers it was handed too.
    """
    lab: ServingLab

    def compute(v: dict) -> Point:
        key = (int(v["max_batch"]), float(v["max_wait_ms"]))
        lab.started_s = None
        if key not in lab.servers:
            began = time.perf_counter()
            server = Server(path, max_batch=key[0], max_wait_ms=key[1], model_delay_ms=model_delay_ms)
            lab.servers[key] = start_all(server)[0]
            lab.started_s = time.perf_counter() - began
        point = measure(lab.servers[key], rows, rate=v["rate"], duration=duration, max_requests=max_requests)
        lab.measured[(*key, float(v["rate"]))] = point
        return point

    def curves() -> dict[str, list[Point]]:
        grouped: dict[str, list[Point]] = {}
        for (max_batch, max_wait, _), point in sorted(lab.measured.items()):
            grouped.setdefault(_label(max_batch, max_wait), []).append(point)
        for name in grouped:
            lab.colours.setdefault(name, f"C{len(lab.colours) % 10}")
        return grouped

    def describe(ex: ServingLab) -> str:
        p = ex.result
        errors = ", ".join(f"{k}: {n}" for k, n in sorted(p.result.errors.items()))
        started = f" · started its server in {ex.started_s:.1f} s" if ex.started_s is not None else ""
        if p.behind:
            verdict = f"fell behind: answered {p.throughput:.0f} of {p.rate:g} requests/s"
        else:
            verdict = f"p99 {'within' if p.p99 < slo_ms else 'over'} the {slo_ms:g} ms target"
        return (
            f"{p.rate:g} requests/s, {_label(p.max_batch, p.max_wait_ms)}: p50 {p.p50:.1f} ms, p99 {p.p99:.1f} ms, "
            f"{verdict} · {p.rows_per_call:.1f} rows per model call"
            + (f" · errors {errors}" if errors else "")
            + started
        )

    controls = {
        "rate": choice_slider("requests/s", RATES, 100),
        "max_batch": choice_slider("max batch", MAX_BATCHES, 32),
        "max_wait_ms": choice_slider("max wait (ms)", MAX_WAITS, 2.0),
    }
    panels = (
        lambda ex, ax: latency_panel(
            ax, curves(), slo_ms=slo_ms, model_ms=model_delay_ms, current=ex.result, colours=ex.colours
        ),
        lambda ex, ax: batch_panel(ax, curves(), model_ms=model_delay_ms, current=ex.result, colours=ex.colours),
    )
    kwargs.setdefault("title", f"Serving under load (model call + {model_delay_ms:g} ms)")
    kwargs.setdefault("figsize", (10, 3.6))
    lab = ServingLab(compute, controls, panels, describe=describe, **kwargs)
    lab.servers.update(servers or {})
    lab.measured.update({(p.max_batch, p.max_wait_ms, p.rate): p for p in points if p.result.mode == "open"})
    return lab
