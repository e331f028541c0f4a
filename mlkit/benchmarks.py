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
import time
from collections.abc import Callable
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import mlkit
from mlkit import bench
from mlkit.train import eval_view

HIDDEN, LR, SEED = (256, 256), 1e-3, 0


def _settings(quick: bool) -> dict:
    if quick:
        return {"epochs": 2, "batches": (32, 256), "eager_steps": 3, "repeats_1": 20, "repeats_big": 3,
                "redraw_epochs": 2, "matmul_n": 256}
    return {"epochs": 20, "batches": (32, 256), "eager_steps": 20, "repeats_1": 300, "repeats_big": 30,
            "redraw_epochs": 20, "matmul_n": 1024}


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
    (loss, logits), grads = grad_fn(model, batch)
    optimizer.update(model, grads)
    return loss


def _functional(graphdef, tx):
    """A pure step for ``jax.jit``: split once outside, merge inside (flax's functional API example)."""
    def step(params, rest, opt_state, batch):
        def loss(p):
            return _loss_fn(nnx.merge(graphdef, p, rest), batch)
        (value, _), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value
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


def _run_epochs(step: Callable, state, epochs: list[list[dict]]) -> tuple[list[float], float, object]:
    """Time each epoch of per-batch calls (blocking once per epoch); returns times, last-epoch loss, state."""
    seconds, losses = [], []
    for batches in epochs:
        start = time.perf_counter()
        losses = []
        for batch in batches:
            state, loss = step(state, batch)
            losses.append(loss)
        jax.block_until_ready((state, losses))
        seconds.append(time.perf_counter() - start)
    return seconds, float(np.mean([float(v) for v in losses])), state


def train_rows(data, batch: int, epochs: int, eager_steps: int, flops_per_step: float, peak: float) -> list[dict]:
    """The four training methods at one batch size."""
    batches = _epochs(data, batch, epochs)
    steps = len(batches[0])
    rows = []

    def add(name, timing, compile_s, loss, note=""):
        per_step = timing.p50 / timing.items
        rows.append({"method": name, "batch": batch, "steps": steps * epochs, "ms/step": per_step * 1e3,
                     "steps/s": 1 / per_step, "compile s": compile_s, "GFLOP/s": flops_per_step / per_step / 1e9,
                     "% peak": 100 * flops_per_step / per_step / 1e9 / peak, "last-epoch loss": loss, "note": note})

    # (1) eager: jax.value_and_grad and optax called op by op from Python, no jit anywhere.
    graphdef, params, rest = nnx.split(_model(), nnx.Param, ...)
    tx = optax.adam(LR)
    step = _functional(graphdef, tx)
    state = (params, tx.init(params))
    eager = lambda s, b: (lambda p, o, v: ((p, o), v))(*step(s[0], rest, s[1], b))  # noqa: E731
    start = time.perf_counter()
    state, _ = eager(state, batches[0][0])
    first = time.perf_counter() - start
    timing = bench.time_calls(lambda: eager(state, batches[0][1]), warmup=1, repeats=eager_steps, unit="step")
    add("eager jax.value_and_grad loop", timing, first - timing.p50, math.nan,
        f"{eager_steps} steps timed, scaled; compile = first-call overhead")

    # (2) nnx.jit per batch, as in flax's NNX MNIST tutorial.
    model = _model()
    optimizer = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
    initial = jax.tree.map(jnp.array, nnx.state((model, optimizer)))
    start = time.perf_counter()
    jax.block_until_ready(_nnx_train_step(model, optimizer, batches[0][0]))
    first = time.perf_counter() - start
    nnx.update((model, optimizer), initial)  # the warm-up step is undone
    seconds, loss, _ = _run_epochs(lambda s, b: (s, _nnx_train_step(model, optimizer, b)), None, batches)
    timing = bench.Timing("nnx", seconds, steps)
    add("nnx.jit step (flax tutorial)", timing, first - timing.per_item, loss, "compile = first call - one step")

    # (3) functional jax.jit per batch.
    executable, compile_s = bench.compile_timed(step, params, rest, tx.init(params), batches[0][0])
    run = lambda s, b: (lambda p, o, v: ((p, o), v))(*executable(s[0], rest, s[1], b))  # noqa: E731
    seconds, loss, _ = _run_epochs(run, (params, tx.init(params)), batches)
    add("functional jax.jit step", bench.Timing("jit", seconds, steps), compile_s, loss)

    # (4) mlkit.fit: one compiled call per epoch, validation after every epoch.
    config = mlkit.TrainConfig(epochs=epochs, batch_size=batch, learning_rate=LR, optimizer="adam", progress=False)
    history = mlkit.fit(_model(), data, config)
    add("mlkit.fit (scan epoch + validation)", bench.Timing("fit", history.epoch_time, steps), history.compile_time,
        history.train_loss[-1], "epoch time includes validating 269 examples")
    return rows


def _numpy_forward(model: mlkit.MLP, preprocessor) -> Callable[[np.ndarray], np.ndarray]:
    """The same network by hand in NumPy float32: pre-processing, ReLU layers, softmax."""
    weights = [(np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])) for layer in [*model.layers, model.head]]
    mean, scale = np.asarray(preprocessor.mean, np.float32), np.asarray(preprocessor.scale, np.float32)

    def forward(x: np.ndarray) -> np.ndarray:
        h = (np.asarray(x, np.float32) - mean) / scale
        for w, b in weights[:-1]:
            h = np.maximum(h @ w + b, 0)
        z = h @ weights[-1][0] + weights[-1][1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return forward


def inference_rows(model: mlkit.MLP, data, repeats_1: int, repeats_big: int) -> tuple[list[dict], dict]:
    """Four ways to answer raw NumPy rows with NumPy probabilities, at batch 1 and 1024; predictions checked."""
    view, prep = eval_view(model), data.preprocessor
    predictor = mlkit.freeze(model, data)

    @nnx.jit
    def pred_step(model, x):
        return jax.nn.softmax(model(prep(x)), axis=-1)

    methods = {
        "eager nnx model": lambda x: np.asarray(jax.nn.softmax(view(prep(jnp.asarray(x))), axis=-1)),
        "nnx.jit": lambda x: np.asarray(pred_step(view, x)),
        "mlkit Predictor.predict_proba": predictor.predict_proba,
        "NumPy by hand": _numpy_forward(model, prep),
    }
    rows, classes = [], {}
    for batch in (1, 1024):
        x = np.resize(data.test.raw_x, (batch, data.num_features)).astype(np.float32)
        repeats = repeats_1 if batch == 1 else repeats_big
        for name, fn in methods.items():
            start = time.perf_counter()
            classes[name, batch] = np.asarray(fn(x)).argmax(1)
            first = time.perf_counter() - start
            r = max(repeats // 5, 3) if name.startswith("eager") else repeats
            t = bench.time_calls(fn, x, items=batch, repeats=r, warmup=2)
            rows.append({"method": name, "batch": batch, "p50 ms": t.p50 * 1e3, "p99 ms": t.p99 * 1e3,
                         "rows/s": t.throughput, "first call s": first})
        core = bench.time_calls(predictor.executable(batch), bench.on_device(x), items=batch, repeats=repeats)
        rows.append({"method": "  Predictor compiled core, input on device", "batch": batch, "p50 ms": core.p50 * 1e3,
                     "p99 ms": core.p99 * 1e3, "rows/s": core.throughput, "first call s": math.nan})
    disagree = {f"{name} @ batch {b}": int((c != classes["NumPy by hand", b]).sum()) for (name, b), c in classes.items()}
    if any(disagree.values()):
        raise RuntimeError(f"Inference methods disagree on predicted classes (rows differing from NumPy): {disagree}")
    return rows, {"rows_checked": 1025, "disagreements": disagree}


def interactivity(data, epochs: int) -> dict:
    """Seconds from a learning-rate change to a redrawn plot: the widget if it exists, else fit + draw."""
    config = mlkit.TrainConfig(epochs=epochs, batch_size=32, learning_rate=LR, progress=False)
    try:
        from mlkit.widgets import TrainingDashboard, log_slider
        slider = log_slider("learning rate", LR, 1e-4, 1.0)
        dash = TrainingDashboard(data, lambda d, values: _model(), config, {"learning_rate": slider}, threaded=False)
        dash.set_value("learning_rate", 2e-3)  # warm-up: compiles and draws once
        start = time.perf_counter()
        dash.set_value("learning_rate", 3e-3)
        return {"method": "TrainingDashboard.set_value('learning_rate', 3e-3)", "epochs": epochs,
                "seconds": time.perf_counter() - start}
    except Exception as e:  # noqa: BLE001 - no widget yet, or a different API: fall back and say so
        reason = f"{type(e).__name__}: {e}"
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mlkit import plots

    def change(lr):
        history = mlkit.fit(_model(), data, config.replace(learning_rate=lr))
        fig = Figure(figsize=(5, 3.2))
        FigureCanvasAgg(fig)
        plots.curves(history, ax=fig.subplots())
        fig.canvas.draw()

    change(2e-3)
    start = time.perf_counter()
    change(3e-3)
    return {"method": "mlkit.fit (new learning rate) + plots.curves + Agg draw", "epochs": epochs,
            "seconds": time.perf_counter() - start, "note": f"widget not used ({reason})"}


def peers() -> dict:
    """Optional peers, only if already installed."""
    found = {}
    for module in ("torch", "onnxruntime"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            found[module] = None
    return found


def _ratio(name, value, target, met) -> dict:
    return {"ratio": name, "value": value, "target": target, "met": bool(met)}


def ratios(train: list[dict], infer: list[dict], redraw: dict) -> list[dict]:
    t = {r["method"]: r for r in train if r["batch"] == 32}
    i = {(r["method"], r["batch"]): r for r in infer}
    fit = t["mlkit.fit (scan epoch + validation)"]["steps/s"]
    pred1, np1 = i["mlkit Predictor.predict_proba", 1]["p50 ms"], i["NumPy by hand", 1]["p50 ms"]
    eager1 = i["eager nnx model", 1]["p50 ms"]
    big = i["mlkit Predictor.predict_proba", 1024]["rows/s"] / i["NumPy by hand", 1024]["rows/s"]
    r_nnx = fit / t["nnx.jit step (flax tutorial)"]["steps/s"]
    r_jit = fit / t["functional jax.jit step"]["steps/s"]
    return [
        _ratio("mlkit.fit steps/s / nnx.jit steps/s (batch 32)", r_nnx, ">= 3", r_nnx >= 3),
        _ratio("mlkit.fit steps/s / functional jax.jit steps/s (batch 32)", r_jit, ">= 1.5", r_jit >= 1.5),
        _ratio("Predictor p50 / NumPy p50 (batch 1)", pred1 / np1, "<= 1.5", pred1 / np1 <= 1.5),
        _ratio("eager nnx p50 / Predictor p50 (batch 1)", eager1 / pred1, ">= 20", eager1 / pred1 >= 20),
        _ratio("Predictor rows/s / NumPy rows/s (batch 1024)", big, ">= 1", big >= 1),
        _ratio("learning-rate change to redrawn plot, seconds", redraw["seconds"], "< 2", redraw["seconds"] < 2),
    ]


def run(quick: bool = False, out: str = "results/bench.json") -> int:
    """Run the whole comparison, print it, write JSON to ``out``. Returns 0 (a missed target is reported, not fatal)."""
    s = _settings(quick)
    began = time.perf_counter()
    machine = {"devices": bench.devices(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
               "optax": optax.__version__, "numpy": np.__version__}
    print(f"mlkit bench{' --quick (rough numbers)' if quick else ''}: {machine['devices']}, "
          f"{machine['cpu_count']} CPUs, jax {jax.__version__}, flax {flax.__version__}")
    data = mlkit.load_dataset("digits", seed=0)
    peak = bench.matmul_peak(s["matmul_n"], repeats=5 if quick else 20)
    print(f"float32 matmul peak ({s['matmul_n']}x{s['matmul_n']}): {peak:.1f} GFLOP/s")

    xb, yb = jnp.asarray(data.train.x[:32]), jnp.asarray(data.train.y[:32])
    cost = bench.train_vs_infer_flops(_model(), xb, yb)
    print(f"FLOPs at batch 32 (XLA cost analysis): training step {cost['train_step']:.3g}, inference pass "
          f"{cost['inference']:.3g}, ratio {cost['ratio']:.2f}")
    train = []
    for batch in s["batches"]:
        per_step = bench.train_vs_infer_flops(_model(), jnp.asarray(data.train.x[:batch]),
                                              jnp.asarray(data.train.y[:batch]))["train_step"]
        train += train_rows(data, batch, s["epochs"], s["eager_steps"], per_step, peak)
    print(f"\nTraining: digits ({len(data.train)} examples), MLP 64-256-256-10, Adam {LR:g}, {s['epochs']} epochs, "
          f"same shuffling and initial weights for all\n" + bench.table(train))

    model = _model()
    mlkit.fit(model, data, mlkit.TrainConfig(epochs=s["epochs"], batch_size=32, learning_rate=LR, progress=False))
    infer, check = inference_rows(model, data, s["repeats_1"], s["repeats_big"])
    print("\nInference: raw NumPy rows in, NumPy probabilities out (trained MLP)\n" + bench.table(infer))
    print(f"predicted classes agree across all methods on {check['rows_checked']} rows")

    redraw = interactivity(data, s["redraw_epochs"])
    print(f"\nInteractivity: {redraw['method']}, {redraw['epochs']} epochs: {redraw['seconds']:.2f} s"
          + (f"  [{redraw['note']}]" if "note" in redraw else ""))

    found = peers()
    for name, version in found.items():
        print(f"peer {name}: " + (f"{version} installed, not benchmarked yet" if version else "not installed, skipped"))

    table = ratios(train, infer, redraw)
    print("\nTargets\n" + bench.table([{**r, "met": "met" if r["met"] else "NOT met"} for r in table]))
    results = {"quick": quick, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()},
               "machine": machine, "matmul_peak_gflops": peak, "flops_batch32": cost, "training": train,
               "inference": infer, "prediction_check": check, "interactivity": redraw, "peers": found,
               "ratios": table, "total_seconds": time.perf_counter() - began}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {out} ({results['total_seconds']:.0f} s)")
    return 0
