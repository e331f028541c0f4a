"""Timing done right: compile apart from run, warm-up, ``block_until_ready``, percentiles.

Follows jax's benchmarking guide: arguments go to the device before the clock
starts, compilation is timed on its own, a few warm-up calls run untimed, and
every timed call waits for its result, so what is measured is the work, not
JAX's asynchronous dispatch. Results are plain dataclasses: ``print`` one for a
table, ``.to_dict()`` it for JSON.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mlkit.models import split_params


def percentiles(seconds: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of ``seconds`` (linear interpolation, like NumPy)."""
    values = np.percentile(np.asarray(seconds, np.float64), qs)
    return {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an aligned plain-text table (floats get 4 significant digits)."""
    columns = list(columns or (rows[0] if rows else []))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.4g}"
        return "-" if v is None else str(v)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(parts: list[str]) -> str:  # first column left-aligned, the rest right-aligned
        return "  ".join(p.rjust(w) if i else p.ljust(w) for i, (p, w) in enumerate(zip(parts, widths, strict=True)))

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


@dataclass
class Timing:
    """Per-call wall times of one thing, plus its compile time, kept apart.

    ``items`` is how much work one call does (rows of a batch, steps of an
    epoch), so ``throughput`` is items per second at the median call.
    """

    name: str
    seconds: list[float]  # one entry per timed call, after warm-up
    items: int = 1
    compile_s: float | None = None  # None: nothing was compiled apart (eager code)
    unit: str = "row"
    note: str = ""

    @property
    def p50(self) -> float:
        return percentiles(self.seconds)["p50"]

    @property
    def p90(self) -> float:
        return percentiles(self.seconds)["p90"]

    @property
    def p99(self) -> float:
        return percentiles(self.seconds)["p99"]

    @property
    def per_item(self) -> float:
        """Seconds per row (or step) at the median call."""
        return self.p50 / self.items

    @property
    def throughput(self) -> float:
        """Rows (or steps) per second at the median call."""
        return self.items / self.p50

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "seconds"}
        return (
            d
            | percentiles(self.seconds)
            | {"calls": len(self.seconds), "per_item_s": self.per_item, "throughput_per_s": self.throughput}
        )

    def row(self) -> dict:
        """The summary line used in tables (milliseconds)."""
        return {
            "name": self.name,
            self.unit + "s/call": self.items,
            "p50 ms": self.p50 * 1e3,
            "p99 ms": self.p99 * 1e3,
            f"{self.unit}s/s": self.throughput,
            "compile s": math.nan if self.compile_s is None else self.compile_s,
        }

    def __str__(self) -> str:
        return table([self.row()])


@dataclass
class Sweep:
    """Timings of one function across batch sizes."""

    name: str
    timings: list[Timing] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "timings": [t.to_dict() for t in self.timings]}

    def __str__(self) -> str:
        return f"{self.name}\n" + table([t.row() for t in self.timings])


def on_device(tree: Any) -> Any:
    """``tree`` copied to the default device, waiting until the copy has landed."""
    return jax.block_until_ready(jax.device_put(tree))


def time_calls(
    fn: Callable,
    *args,
    name: str = "",
    items: int = 1,
    warmup: int = 3,
    repeats: int = 50,
    compile_s: float | None = None,
    unit: str = "row",
    note: str = "",
) -> Timing:
    """Call ``fn(*args)`` ``warmup`` times untimed, then ``repeats`` times, blocking on every result."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - start)
    return Timing(name or getattr(fn, "__name__", "fn"), seconds, items, compile_s, unit, note)


def compare(
    fns: dict[str, Callable],
    *args,
    items: int = 1,
    rounds: int = 10,
    calls: int = 20,
    warmup: int = 2,
    unit: str = "row",
) -> dict[str, Timing]:
    """Time several functions on the same arguments in turns (``rounds`` of ``calls`` each),
    so a machine that gets busier half-way slows every contender alike."""
    for fn in fns.values():
        for _ in range(warmup):
            jax.block_until_ready(fn(*args))
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            seconds[name] += time_calls(fn, *args, warmup=0, repeats=calls).seconds
    return {name: Timing(name, s, items, unit=unit) for name, s in seconds.items()}


def compile_timed(fn: Callable, *args) -> tuple[Any, float]:
    """``jax.jit(fn)`` compiled ahead of time for these arguments, and the seconds compiling took."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(*args).compile()
    return executable, time.perf_counter() - start


def time_jitted(fn: Callable, *args, name: str = "", items: int = 1, **kwargs) -> Timing:
    """Compile ``fn`` for ``args`` (timed apart), put ``args`` on the device, then time steady-state calls."""
    executable, seconds = compile_timed(fn, *args)
    return time_calls(
        executable,
        *on_device(args),
        name=name or getattr(fn, "__name__", "fn"),
        items=items,
        compile_s=seconds,
        **kwargs,
    )


def cost_flops(executable: Any) -> float:
    """FLOPs XLA counts in a compiled executable (a loop body counts once, whatever its trip count)."""
    analysis = executable.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per device program
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", math.nan))


def flops(fn: Callable, *args) -> float:
    """FLOPs of one call of ``fn(*args)``, from XLA's cost analysis of the compiled function."""
    return cost_flops(jax.jit(fn).lower(*args).compile())


def train_vs_infer_flops(
    model: nnx.Module, x: jax.Array, y: jax.Array, tx: optax.GradientTransformation | None = None
) -> dict[str, float]:
    """FLOPs of one training step (forward, backward, optimiser update) and one inference pass on ``x``."""
    tx = tx or optax.adam(1e-3)
    graphdef, params, rest = split_params(model)

    def loss(p, xb, yb):
        logits = nnx.merge(graphdef, p, rest, copy=True)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(p, opt_state, xb, yb):
        grads = jax.grad(loss)(p, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    def infer(p, xb):
        return nnx.merge(graphdef, p, rest, copy=True)(xb)

    train = flops(step, params, tx.init(params), x, y)
    forward = flops(infer, params, x)
    return {"train_step": train, "inference": forward, "ratio": train / forward}


def predictor_sweep(
    predictor: Any,
    x: np.ndarray,
    batches: Sequence[int] = (1, 16, 256, 1024),
    *,
    repeats: int = 50,
    warmup: int = 3,
    end_to_end: bool = False,
) -> Sweep:
    """Latency and throughput of a ``Predictor`` across batch sizes.

    By default times the compiled function alone, input already on the device
    (``predictor.executable(batch)``); ``end_to_end=True`` times
    ``predict_proba`` on NumPy rows: validation, padding and copies included.
    """
    sweep = Sweep("predict_proba, NumPy in and out" if end_to_end else "compiled function, input on device")
    for batch in batches:
        xb = np.resize(np.asarray(x, np.float32), (batch, x.shape[1]))
        start = time.perf_counter()
        executable = predictor.executable(batch)
        compile_s = time.perf_counter() - start
        if end_to_end:
            timing = time_calls(predictor.predict_proba, xb, repeats=repeats, warmup=warmup)
        else:
            timing = time_calls(executable, on_device(xb), repeats=repeats, warmup=warmup)
        timing.name, timing.items, timing.compile_s = f"batch {batch}", batch, compile_s
        sweep.timings.append(timing)
    return sweep


def devices() -> list[dict]:
    """The devices JAX sees: platform, kind and id."""
    return [{"id": d.id, "platform": d.platform, "kind": d.device_kind} for d in jax.devices()]


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """Measured float32 matmul speed of the default device in GFLOP/s (best of ``repeats``)."""
    a = on_device(jax.random.normal(jax.random.key(0), (n, n), jnp.float32))
    timing = time_jitted(jnp.matmul, a, a, repeats=repeats, warmup=2)
    return 2 * n**3 / min(timing.seconds) / 1e9
