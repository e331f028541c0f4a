"""``python -m mlkit bench``: mlkit against the usual ways to train and to infer, in one run.

Same model (MLP 64-256-256-10), same data (digits, seed 0), same initial
weights, same shuffling and number of steps for every training method; same
trained weights and inputs for every inference method. Compile time is kept
apart from steady state everywhere (see :mod:`mlkit.bench`). Prints tables and
the target ratios, writes everything as JSON.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import mlkit
from mlkit import bench
from mlkit.data import Dataset
from mlkit.models import split_params
from mlkit.tools import inference_bench, serve_bench

HIDDEN, LR, SEED = (256, 256), 1e-3, 0
COMPILE_NOTE = (
    "compile s: everything a first call costs beyond a steady one (tracing, XLA compile, first-run "
    "set-up): first call - one step for the eager and nnx.jit loops; lower+compile plus first-call excess\n"
    "for jax.jit; History.compile_time plus first-epoch excess for mlkit.fit. ms/step: median epoch/steps."
)


TRAIN_COLUMNS = (
    "method",
    "batch",
    "steps",
    "ms/step",
    "steps/s",
    "compile s",
    "GFLOP/s",
    "% peak",
    "last-epoch loss",
    "note",
)


def _settings(quick: bool) -> dict:
    if quick:
        return {
            "epochs": 3,
            "batches": (32, 256),
            "eager_steps": 2,
            "repeats_1": 20,
            "repeats_big": 3,
            "redraw_epochs": 3,
            "sweep_batches": (8, 512),
            "sweep_epochs": 3,
            "redraw_repeats": 1,
            "matmul_n": 256,
        }
    return {
        "epochs": 20,
        "batches": (32, 256),
        "eager_steps": 20,
        "repeats_1": 300,
        "repeats_big": 30,
        "redraw_epochs": 20,
        "sweep_batches": (1, 2, 4, 8, 16, 64, 128, 512),
        "sweep_epochs": 6,
        "redraw_repeats": 3,
        "matmul_n": 1024,
    }


def _model() -> mlkit.MLP:
    return mlkit.MLP(64, HIDDEN, 10, seed=SEED)


def _loss_fn(model, batch):
    """The loss of flax's NNX MNIST tutorial: mean cross-entropy, logits as aux."""
    logits = model(batch["image"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits=logits, labels=batch["label"]).mean()
    return loss, logits


@nnx.jit
def _nnx_train_step(model, optimizer, batch):
    """flax's tutorial train step (its metrics object left out, which only makes it faster)."""
    grad_fn = nnx.value_and_grad(_loss_fn, has_aux=True)
    (loss, _logits), grads = grad_fn(model, batch)
    optimizer.update(model, grads)
    return loss


def _functional(graphdef, rest, tx):
    """A pure step ``(params, opt_state), batch -> (params, opt_state), loss``: the model split once
    outside, merged inside (flax's functional-API example). Run it eagerly or under ``jax.jit``."""

    def step(state, batch):
        params, opt_state = state
        (loss, _), grads = jax.value_and_grad(lambda p: _loss_fn(nnx.merge(graphdef, p, rest), batch), has_aux=True)(
            params
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def _epochs(data, batch: int, epochs: int) -> list[list[dict]]:
    """Every method's batches, on the device: the same shuffling ``mlkit.fit`` does (its seed, its keys)."""
    n = len(data.train)
    steps = n // batch
    keys = jax.random.split(jax.random.key(SEED), epochs)
    x, y = data.train.x, data.train.y
    out = []
    for key in keys:
        order = np.asarray(jax.random.permutation(key, n))[: steps * batch].reshape(steps, batch)
        out.append([bench.on_device({"image": x[i], "label": y[i]}) for i in order])
    return out


def _epoch_runner(step: Callable, state) -> tuple[Callable[[list], None], dict]:
    """``run(batches)`` feeds one epoch through ``step(state, batch) -> (state, loss)``, blocking once at the
    end; ``record`` collects each epoch's seconds and the last epoch's mean loss."""
    record: dict[str, Any] = {"seconds": [], "loss": math.nan}

    def run(batches: list) -> None:
        nonlocal state
        start = time.perf_counter()
        losses = []
        for batch in batches:
            state, loss = step(state, batch)
            losses.append(loss)
        jax.block_until_ready((state, losses))
        record["seconds"].append(time.perf_counter() - start)
        record["loss"] = float(np.mean([float(v) for v in losses]))

    return run, record


def train_rows(data, batch: int, epochs: int, eager_steps: int, flops_per_step: float) -> tuple[list[dict], mlkit.MLP]:
    """The four training methods at one batch size, from the same initial weights on the same batches;
    also returns the model ``mlkit.fit`` trained.

    The per-batch loops run their epoch ``e`` right after ``mlkit.fit`` finishes its epoch ``e`` (from
    fit's callback, outside fit's own epoch clock), so a machine that gets busier slows all of them alike.
    """
    batches = _epochs(data, batch, epochs)
    steps = len(batches[0])
    rows = []

    def add(name, seconds, items, compile_s, loss, note=""):
        per_step = float(np.median(seconds)) / items
        rows.append(
            {
                "method": name,
                "batch": batch,
                "steps": steps * epochs,
                "ms/step": per_step * 1e3,
                "steps/s": 1 / per_step,
                "compile s": compile_s,
                "GFLOP/s": flops_per_step / per_step / 1e9,
                "% peak": math.nan,
                "last-epoch loss": loss,
                "note": note,
                "timed_seconds": [float(v) for v in seconds],
            }
        )  # per epoch (per step for eager): JSON only

    # (1) eager: jax.value_and_grad and optax called op by op from Python, no jit anywhere.
    graphdef, params, rest = split_params(_model())
    tx = optax.adam(LR)
    step = _functional(graphdef, rest, tx)
    start = time.perf_counter()
    state, _ = step((params, tx.init(params)), batches[0][0])
    first = time.perf_counter() - start
    timing = bench.time_calls(step, state, batches[0][1], warmup=1, repeats=eager_steps, unit="step")
    add(
        "eager jax.value_and_grad loop",
        timing.seconds,
        1,
        first - timing.p50,
        math.nan,
        f"{eager_steps} steps timed, scaled",
    )

    # (2) nnx.jit per batch, as in flax's NNX MNIST tutorial. Its compile: the first call, undone afterwards.
    model = _model()
    optimizer = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
    initial = jax.tree.map(jnp.array, nnx.state((model, optimizer)))
    start = time.perf_counter()
    jax.block_until_ready(_nnx_train_step(model, optimizer, batches[0][0]))
    nnx_first = time.perf_counter() - start
    nnx.update((model, optimizer), initial)
    run_nnx, nnx_record = _epoch_runner(lambda s, b: (s, _nnx_train_step(model, optimizer, b)), None)

    # (3) functional jax.jit per batch, compiled ahead of time.
    initial = (params, tx.init(params))
    executable, jit_compile = bench.compile_timed(step, initial, batches[0][0])
    start = time.perf_counter()
    jax.block_until_ready(executable(initial, batches[0][0]))  # a first run costs extra too; result dropped
    jit_first = time.perf_counter() - start
    run_jit, jit_record = _epoch_runner(executable, initial)

    # (4) mlkit.fit: one compiled call per epoch, validation after every epoch; the others run in its callback.
    def others(history) -> None:
        run_nnx(batches[history.epochs - 1])
        run_jit(batches[history.epochs - 1])

    config = mlkit.TrainConfig(epochs=epochs, batch_size=batch, learning_rate=LR, optimizer="adam", progress=False)
    trained = _model()
    history = mlkit.fit(trained, data, config, callbacks=[others])
    nnx_step_s = np.median(nnx_record["seconds"]) / steps
    add("nnx.jit step (flax tutorial)", nnx_record["seconds"], steps, nnx_first - nnx_step_s, nnx_record["loss"])
    jit_step_s = np.median(jit_record["seconds"]) / steps
    add(
        "functional jax.jit step",
        jit_record["seconds"],
        steps,
        jit_compile + jit_first - jit_step_s,
        jit_record["loss"],
    )
    steady = history.epoch_time[1:] or history.epoch_time  # fit's first epoch also pays a first-run cost
    first_run = history.compile_time + max(history.epoch_time[0] - float(np.median(steady)), 0.0)
    add(
        "mlkit.fit (scan epoch + validation)",
        steady,
        steps,
        first_run,
        history.train_loss[-1],
        f"includes validating {len(data.val)} rows",
    )
    add(
        "mlkit.fit, training call only",
        history.train_time[1:] or history.train_time,
        steps,
        first_run,
        history.train_loss[-1],
        "the same epochs without their validation",
    )
    return rows, trained


def fit_vs_jit(data, batch: int, epochs: int) -> dict:
    """``mlkit.fit`` against the functional ``jax.jit`` loop alone at one batch size: ms per step of fit's
    training call, of its whole epoch (with validation), and of the loop, whose epochs run in fit's callback."""
    batches = _epochs(data, batch, epochs)
    graphdef, params, rest = split_params(_model())
    tx = optax.adam(LR)
    initial = (params, tx.init(params))
    executable, _ = bench.compile_timed(_functional(graphdef, rest, tx), initial, batches[0][0])
    jax.block_until_ready(executable(initial, batches[0][0]))
    run_jit, record = _epoch_runner(executable, initial)
    config = mlkit.TrainConfig(epochs=epochs, batch_size=batch, learning_rate=LR, progress=False)
    history = mlkit.fit(_model(), data, config, callbacks=[lambda h: run_jit(batches[h.epochs - 1])])
    steps = len(batches[0])
    ms = lambda seconds: float(np.median(seconds[1:] or seconds)) / steps * 1e3
    fit_ms, jit_ms = ms(history.train_time), ms(record["seconds"])
    # the loop's batches were shuffled before its clock; fit shuffles inside its call, with the same permutation
    shuffle = jax.jit(lambda key: jax.random.permutation(key, len(data.train)))
    shuffle_s = bench.time_calls(shuffle, jax.random.key(SEED), repeats=max(epochs, 20)).seconds
    return {
        "batch": batch,
        "steps/epoch": steps,
        "fit training ms/step": fit_ms,
        "fit with validation ms/step": ms(history.epoch_time),
        "jax.jit loop ms/step": jit_ms,
        "jit / fit": jit_ms / fit_ms,
        "fit's shuffle ms/step": ms(shuffle_s),
    }


Redraw = Callable[[Dataset, Callable[[], nnx.Module], mlkit.TrainConfig, Sequence[float]], dict]


def interactivity(redraw: Redraw | None, data: Dataset, epochs: int, repeats: int = 1) -> dict:
    """Seconds from a learning-rate change to a redrawn plot, measured by ``redraw`` (the lessons'
    :func:`mlkit.lessons.timing.redraw_seconds`); NaN, and said, when none is given."""
    if redraw is None:
        return {
            "method": "not measured (no dashboard timer given)",
            "epochs": epochs,
            "seconds": math.nan,
            "all_seconds": [],
        }
    config = mlkit.TrainConfig(epochs=epochs, batch_size=32, learning_rate=LR, progress=False)
    return redraw(data, _model, config, [2e-3, 3e-3, 4e-3, 5e-3, 6e-3][: repeats + 1])


def _torch_rows(data, trained: mlkit.MLP, epochs: int, repeats: int) -> tuple[list[dict], list[dict]]:
    """PyTorch CPU peer: the same network, initial weights, batches and optimiser; then the trained weights."""
    import torch

    def net(model):
        layers = []
        for kernel, bias in inference_bench.weights(model):
            linear = torch.nn.Linear(*kernel.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                linear.bias.copy_(torch.from_numpy(bias.copy()))
            layers += [linear, torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    module, batches = net(_model()), _epochs(data, 32, epochs)
    optimizer, loss_fn = torch.optim.Adam(module.parameters(), lr=LR), torch.nn.CrossEntropyLoss()
    tensors = [
        [(torch.tensor(np.asarray(b["image"])), torch.tensor(np.asarray(b["label"])).long()) for b in epoch]
        for epoch in batches
    ]
    seconds = []
    for epoch in tensors:
        start, losses = time.perf_counter(), []
        for xb, yb in epoch:
            optimizer.zero_grad()
            loss = loss_fn(module(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        seconds.append(time.perf_counter() - start)
    per_step = float(np.median(seconds)) / len(batches[0])
    train = [
        {
            "method": "peer: PyTorch CPU eager loop",
            "batch": 32,
            "steps": epochs * len(batches[0]),
            "ms/step": per_step * 1e3,
            "steps/s": 1 / per_step,
            "last-epoch loss": float(torch.stack(losses).mean()),
            "note": "same initial weights and batches",
        }
    ]
    module, prep = net(trained).eval(), data.preprocessor
    mean, scale = torch.from_numpy(prep.mean), torch.from_numpy(prep.scale)

    def predict(x):
        with torch.inference_mode():
            return torch.softmax(module((torch.from_numpy(x) - mean) / scale), dim=1).numpy()

    return train, _peer_infer("peer: PyTorch CPU", predict, trained, data, repeats)


def _peer_infer(name: str, predict: Callable, trained: mlkit.MLP, data, repeats: int) -> list[dict]:
    rows, reference = [], inference_bench.numpy_forward(trained, data.preprocessor)
    for batch in (1, 1024):
        x = np.resize(data.test.raw_x, (batch, data.num_features)).astype(np.float32)
        differ = int((np.asarray(predict(x)).argmax(1) != reference(x).argmax(1)).sum())
        if differ:
            raise RuntimeError(f"{name} disagrees with the NumPy forward pass on {differ} of {batch} rows.")
        t = bench.time_calls(predict, x, items=batch, repeats=repeats if batch == 1 else max(repeats // 10, 3))
        rows.append(inference_bench.row(name, batch, t))
    return rows


def peers(data, trained: mlkit.MLP, epochs: int, repeats: int) -> tuple[list[dict], list[dict], dict]:
    """Optional peers, run only if already installed: (training rows, inference rows, what was found)."""
    train, infer, found = [], [], {}
    if serve_bench.installed("torch"):
        rows = _torch_rows(data, trained, epochs, repeats)
        train, infer, found["torch"] = rows[0], rows[1], "measured"
    else:
        found["torch"] = "not installed, skipped"
    onnx = serve_bench.installed("onnxruntime") and serve_bench.installed("jax2onnx")
    found["onnxruntime"] = "measured on mlkit's .onnx artifact" if onnx else "onnxruntime or jax2onnx missing, skipped"
    return train, infer, found


def _plain(obj):
    """JSON-ready: tuples as lists, NumPy scalars as Python numbers, NaN and infinity as null."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.generic, float)):
        value = obj.item() if isinstance(obj, np.generic) else obj
        return value if not isinstance(value, float) or math.isfinite(value) else None
    return obj


def _ratio(name, value, target, met) -> dict:
    return {"ratio": name, "value": value, "target": target, "met": bool(met)}


def ratios(
    train: list[dict], infer: list[dict], redraw: dict, sweep: Sequence[dict] = (), serving: dict | None = None
) -> list[dict]:
    """The targets, each as (name, value, target, met); a ratio whose parts were not measured is NaN, not met."""
    t = {(r["method"], r["batch"]): r["steps/s"] for r in train}
    i = {(r["method"], r["batch"]): r for r in infer}
    nan = {"p50 ms": math.nan, "rows/s": math.nan}
    p50 = lambda name: i.get((name, 1), nan)["p50 ms"]
    rows_s = lambda name: i.get((name, 1024), nan)["rows/s"]
    fit, fit_train = "mlkit.fit (scan epoch + validation)", "mlkit.fit, training call only"
    jit = "functional jax.jit step"
    against_jit = {b: t[fit_train, b] / t[jit, b] for _, b in t if (fit_train, b) in t}
    against_jit |= {r["batch"]: r["jit / fit"] for r in sweep}
    worst = min(against_jit, key=lambda b: against_jit[b])
    ort, fresh_ort = inference_bench.ORT, f"fresh process: {inference_bench.ORT}"
    pred, frozen = "mlkit Predictor.predict_proba", "fresh process: Predictor frozen here"
    loaded = "fresh process: load_predictor(jax.export dir)"
    values = [
        ("mlkit.fit steps/s / nnx.jit steps/s (batch 32)", t[fit, 32] / t["nnx.jit step (flax tutorial)", 32], ">= 3"),
        (
            "mlkit.fit steps/s / functional jax.jit steps/s (batch 32, fit validating too)",
            t[fit, 32] / t[jit, 32],
            ">= 1.5",
        ),
        (
            f"fit training steps/s / jax.jit steps/s, worst of batches {sorted(against_jit)} (batch {worst})",
            against_jit[worst],
            ">= 1",
        ),
        ("Predictor p50 / ONNX Runtime p50 (batch 1, this process)", p50(pred) / p50(ort), "<= 1"),
        (
            "Predictor p50 / ONNX Runtime p50 (batch 1, fresh process, frozen there)",
            p50(frozen) / p50(fresh_ort),
            "<= 1",
        ),
        ("loaded artifact p50 / ONNX Runtime p50 (batch 1, fresh process)", p50(loaded) / p50(fresh_ort), "<= 1"),
        ("Predictor rows/s / ONNX Runtime rows/s (batch 1024, this process)", rows_s(pred) / rows_s(ort), ">= 1"),
        (
            "loaded artifact rows/s / ONNX Runtime rows/s (batch 1024, fresh process)",
            rows_s(loaded) / rows_s(fresh_ort),
            ">= 1",
        ),
        ("Predictor p50 / NumPy p50 (batch 1, this process)", p50(pred) / p50("NumPy by hand"), "<= 1.5"),
        ("eager nnx p50 / Predictor p50 (batch 1, this process)", p50("eager nnx model") / p50(pred), ">= 20"),
        ("Predictor rows/s / NumPy rows/s (batch 1024, this process)", rows_s(pred) / rows_s("NumPy by hand"), ">= 1"),
        ("learning-rate change to redrawn plot, seconds", redraw["seconds"], "< 2"),
        *serve_bench.ratios(serving),
    ]
    return [_ratio(name, value, target, _meets(value, target)) for name, value, target in values]


def _meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written as ``">= 3"``, ``"<= 1"`` or ``"< 2"``; never for NaN."""
    op, bound = target.split()
    compare = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}[op]
    return math.isfinite(value) and compare(float(value), float(bound))


def run(quick: bool = False, out: str = "results/bench.json", redraw: Redraw | None = None) -> int:
    """Run the whole comparison, print it, write JSON to ``out``. Returns 0 (a missed target is reported, not fatal).

    ``redraw`` times the training dashboard (``python -m mlkit bench`` passes the lessons' timer).
    """
    s = _settings(quick)
    began = time.perf_counter()
    machine = {
        "devices": bench.devices(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "compilation_cache": jax.config.values["jax_compilation_cache_dir"] or None,
    }
    print(
        f"mlkit bench{' --quick (rough numbers)' if quick else ''}: {machine['devices']}, "
        f"{machine['cpu_count']} CPUs, jax {jax.__version__}, flax {flax.__version__}"
    )
    if machine["compilation_cache"]:
        print(
            f"persistent compilation cache on ({machine['compilation_cache']}): after a first run, 'compile s' "
            f"are mostly cache loads; MLKIT_COMPILATION_CACHE=0 measures cold compiles"
        )
    data = mlkit.load_dataset("digits", seed=0)
    peak = bench.matmul_peak(s["matmul_n"], repeats=5 if quick else 20)

    costs = {
        b: bench.train_vs_infer_flops(_model(), jnp.asarray(data.train.x[:b]), jnp.asarray(data.train.y[:b]))
        for b in s["batches"]
    }
    print(
        f"FLOPs at batch 32 (XLA cost analysis): training step {costs[32]['train_step']:.3g}, inference pass "
        f"{costs[32]['inference']:.3g}, ratio {costs[32]['ratio']:.2f}"
    )
    runs = [train_rows(data, b, s["epochs"], s["eager_steps"], costs[b]["train_step"]) for b in s["batches"]]
    train, trained = [row for rows, _ in runs for row in rows], runs[0][1]  # the inference rows use batch 32's model
    peak = max(peak, bench.matmul_peak(s["matmul_n"], repeats=5 if quick else 20))  # before and after: the best seen
    for row in train:
        row["% peak"] = 100 * row["GFLOP/s"] / peak
    print(
        f"float32 matmul peak ({s['matmul_n']}x{s['matmul_n']}, best of before and after training): {peak:.1f} GFLOP/s"
    )
    print(
        f"\nTraining: digits ({len(data.train)} examples), MLP 64-256-256-10, Adam {LR:g}, {s['epochs']} epochs, "
        f"same shuffling and initial weights for all; the per-batch loops run in turns with fit's epochs\n"
        + bench.table(train, TRAIN_COLUMNS)
        + "\n"
        + COMPILE_NOTE
    )

    sweep = [fit_vs_jit(data, b, s["sweep_epochs"]) for b in s["sweep_batches"]]
    print(
        "\nfit against the functional jax.jit loop at more batch sizes (training only; fit's epochs also validate "
        f"{len(data.val)} rows, shown apart; fit's call also shuffles the epoch, which the loop did before its "
        "clock: that permutation's cost is the last column)\n" + bench.table(sweep)
    )

    onnx = serve_bench.installed("onnxruntime") and serve_bench.installed("jax2onnx")
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-") as tmp:
        onnx_path = mlkit.save_predictor(mlkit.freeze(trained, data), Path(tmp) / "model.onnx") if onnx else None
        infer, check = inference_bench.inference_rows(trained, data, s["repeats_1"], s["repeats_big"], onnx_path)
    print(
        "\nInference in this process (async dispatch, JAX's default): raw NumPy rows in, NumPy probabilities out "
        "(the MLP fit trained at batch 32), timed in turns\n"
        + bench.table(infer)
        + f"\npredicted classes agree across all methods on {check['rows_checked']} rows"
    )
    fresh, fresh_check = inference_bench.fresh_process_rows(trained, data, s["repeats_1"], s["repeats_big"], onnx)
    check["fresh_process"] = fresh_check
    print(
        f"\nInference in a fresh process that only answers (synchronous dispatch: "
        f"{fresh_check['synchronous_dispatch']}), the same network saved and loaded, timed in turns\n"
        + bench.table(fresh)
    )
    infer += fresh

    peer_train, peer_infer, found = peers(data, trained, s["epochs"], s["repeats_1"])
    print("\nPeers: " + "; ".join(f"{name} {what}" for name, what in found.items()))
    for rows in (peer_train, peer_infer):
        if rows:
            print(bench.table(rows, [c for c in rows[0] if c != "timed_seconds"]))

    serving = serve_bench.serving_rows(trained, data, quick)
    print("\n" + serve_bench.describe(serving))

    redrawn = interactivity(redraw, data, s["redraw_epochs"], s["redraw_repeats"])
    print(
        f"\nInteractivity: {redrawn['method']}, {redrawn['epochs']} epochs: {redrawn['seconds']:.2f} s "
        f"(median of {len(redrawn['all_seconds'])})"
    )

    table = ratios(train, infer, redrawn, sweep, serving)
    print("\nTargets\n" + bench.table([{**r, "met": "met" if r["met"] else "NOT met"} for r in table]))
    results = {
        "quick": quick,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()},
        "machine": machine,
        "matmul_peak_gflops": peak,
        "flops": {str(b): c for b, c in costs.items()},
        "training": train + peer_train,
        "fit_vs_jit": sweep,
        "inference": infer + peer_infer,
        "prediction_check": check,
        "interactivity": redrawn,
        "serving": serving,
        "peers": found,
        "ratios": table,
        "total_seconds": time.perf_counter() - began,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(_plain(results), indent=2, allow_nan=False))
    print(f"\nwrote {out} ({results['total_seconds']:.0f} s)")
    return 0
