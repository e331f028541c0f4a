"""The inference half of ``python -m mlkit bench``: the same trained network answered every usual way.

Raw NumPy rows in, NumPy probabilities out, pre-processing included, at batch 1
and batch 1024, every method timed in turns (:func:`mlkit.bench.compare`) and
checked to predict the same classes as a NumPy forward pass. Two processes:

* this one, where the network was just trained: JAX's default asynchronous
  CPU dispatch, as in a plain Python session;
* a fresh child process that only answers, with synchronous dispatch
  (:mod:`mlkit.infer.dispatch`), as ``python -m mlkit predict``, a server or a
  notebook on the "Python (mlkit)" kernel run: the network frozen there from a
  checkpoint, the jax.export artifact loaded there, and ONNX Runtime on the
  ``.onnx`` artifact, side by side.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import mlkit
from mlkit import bench
from mlkit.data import Dataset, Preprocessor
from mlkit.infer import compress
from mlkit.models import eval_view

BATCHES = (1, 1024)
ORT = "ONNX Runtime (mlkit .onnx artifact)"
FLOOR_JAX = "  fresh process: call floor, compiled x + 1 (JAX)"
FLOOR_ORT = "  fresh process: call floor, x + 1 graph (ONNX Runtime)"


def weights(model: mlkit.MLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each layer, input first, as NumPy float32 (exact: the model has no batch norm to fold)."""
    return [(layer["w"], layer["b"]) for layer in compress.dense_layers(model)[0]]


def numpy_forward(model: mlkit.MLP, preprocessor: Preprocessor) -> Callable[[np.ndarray], np.ndarray]:
    """The same network by hand in NumPy float32: pre-processing, ReLU layers, softmax."""
    layers = weights(model)

    def forward(x: np.ndarray) -> np.ndarray:
        z = preprocessor(np.asarray(x, np.float32))
        for i, (kernel, bias) in enumerate(layers):
            z = z @ kernel + bias
            z = np.maximum(z, 0.0) if i < len(layers) - 1 else z
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return forward


def onnx_session(path: Path | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """Plain ONNX Runtime on the file, as a user without mlkit would run it; None without the file."""
    if path is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]


def timed_rows(
    methods: dict[str, Callable],
    reference: str,
    data: Dataset,
    repeats_1: int,
    repeats_big: int,
    extra: Callable[[int, np.ndarray], dict[str, Callable]] | None = None,
) -> tuple[list[dict], dict]:
    """Every method at every batch size, timed in turns, and how many rows each disagrees with ``reference`` on."""
    rows, disagree = [], {}
    for batch in BATCHES:
        x = np.resize(data.test.raw_x, (batch, data.num_features)).astype(np.float32)
        first, classes = {}, {}
        for name, fn in methods.items():
            start = time.perf_counter()
            classes[name] = np.asarray(fn(x)).argmax(1)
            first[name] = time.perf_counter() - start
        disagree.update(
            {f"{name} @ batch {batch}": int((c != classes[reference]).sum()) for name, c in classes.items()}
        )
        timed = {**methods, **(extra(batch, x) if extra else {})}
        rounds, calls = (10, max(repeats_1 // 10, 2)) if batch == 1 else (max(repeats_big // 5, 1), 5)
        for name, t in bench.compare(timed, x, items=batch, rounds=rounds, calls=calls).items():
            rows.append(row(name, batch, t, first.get(name, math.nan)))
    if any(disagree.values()):
        raise RuntimeError(f"Inference methods disagree on predicted classes (rows differing from NumPy): {disagree}")
    return rows, disagree


def row(method: str, batch: int, t: bench.Timing, first_call: float = math.nan) -> dict:
    """One row of the inference table."""
    return {
        "method": method,
        "batch": batch,
        "p50 ms": t.p50 * 1e3,
        "p99 ms": t.p99 * 1e3,
        "rows/s": t.throughput,
        "first call s": first_call,
    }


def _core(core: Callable, x_device: jax.Array, _x: np.ndarray) -> jax.Array:
    """The compiled core on input already on the device (the host copy passed in is ignored)."""
    return core(x_device)


def inference_rows(
    model: mlkit.MLP, data: Dataset, repeats_1: int, repeats_big: int, onnx_path: Path | None = None
) -> tuple[list[dict], dict]:
    """The ways to answer in this (training) process; ONNX Runtime too when ``onnx_path`` is given."""
    view, prep = eval_view(model), data.preprocessor
    predictor = mlkit.freeze(model, data)

    @nnx.jit
    def pred_step(model, x):
        return jax.nn.softmax(model(prep(x)), axis=-1)

    methods = {
        "eager nnx model": lambda x: np.asarray(jax.nn.softmax(view(prep(jnp.asarray(x))), axis=-1)),
        "nnx.jit": lambda x: np.asarray(pred_step(view, x)),
        "mlkit Predictor.predict_proba": predictor.predict_proba,
        "NumPy by hand": numpy_forward(model, prep),
    }
    if (session := onnx_session(onnx_path)) is not None:
        methods[ORT] = session

    def core(batch: int, x: np.ndarray) -> dict[str, Callable]:
        run = functools.partial(_core, predictor.executable(batch), bench.on_device(x))
        return {"  Predictor compiled core, input on device": run}

    rows, disagree = timed_rows(methods, "NumPy by hand", data, repeats_1, repeats_big, core)
    return rows, {"rows_checked": sum(BATCHES), "disagreements": disagree}


CHILD = """
import sys
from mlkit.tools.inference_bench import child
child(*sys.argv[1:])
"""


def call_floors(batch: int, x: np.ndarray) -> dict[str, Callable]:
    """What one call costs each runtime before any arithmetic: ``x + 1`` on the same NumPy input, NumPy out.

    The gap between the two is the part of a batch-1 answer that no change to the model can win back.
    """
    import onnx
    import onnxruntime

    add_one = jax.jit(lambda v: v + 1).lower(jax.ShapeDtypeStruct(x.shape, jnp.float32)).compile()
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Add", ["x", "one"], ["y"])],
        "add_one",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", x.shape[1]])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", x.shape[1]])],
        [h.make_tensor("one", onnx.TensorProto.FLOAT, [], [1.0])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return {
        FLOOR_JAX: lambda v: np.asarray(add_one(v)),
        FLOOR_ORT: lambda v: session.run(None, {"x": v})[0],
    }


def fresh_process_rows(
    model: mlkit.MLP, data: Dataset, repeats_1: int, repeats_big: int, onnx: bool
) -> tuple[list[dict], dict]:
    """Save the network three ways, then time them in a child process that only answers (synchronous dispatch)."""
    with tempfile.TemporaryDirectory(prefix="mlkit-bench-") as tmp:
        folder = Path(tmp)
        frozen = mlkit.freeze(model, data)
        mlkit.save_predictor(frozen, folder / "artifact")
        mlkit.save_checkpoint(folder / "weights.npz", model)
        if onnx:
            mlkit.save_predictor(frozen, folder / "model.onnx")
        hidden = json.dumps([layer.out_features for layer in model.layers])
        args = [str(folder), str(repeats_1), str(repeats_big), hidden]
        done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"The inference-only benchmark process failed:\n{done.stderr[-3000:]}")
        result = json.loads((folder / "result.json").read_text())
    return result["rows"], result["check"]


def child(folder: str, repeats_1: str, repeats_big: str, hidden: str) -> None:
    """In the child: synchronous dispatch before JAX starts, then the three ways side by side."""
    from mlkit.infer.dispatch import prefer_sync_dispatch

    sync = prefer_sync_dispatch()
    where = Path(folder)
    data = mlkit.load_dataset("digits", seed=0)
    model = mlkit.MLP(data.num_features, tuple(json.loads(hidden)), data.num_classes, seed=0)
    mlkit.load_checkpoint(where / "weights.npz", model)
    methods = {
        "fresh process: Predictor frozen here": mlkit.freeze(model, data).predict_proba,
        "fresh process: load_predictor(jax.export dir)": mlkit.load_predictor(where / "artifact").predict_proba,
        "fresh process: NumPy by hand": numpy_forward(model, data.preprocessor),
    }
    onnx_file = where / "model.onnx"
    if onnx_file.exists() and (session := onnx_session(onnx_file)) is not None:
        methods["fresh process: load_predictor(.onnx)"] = mlkit.load_predictor(onnx_file).predict_proba
        methods[f"fresh process: {ORT}"] = session
    extra = call_floors if f"fresh process: {ORT}" in methods else None
    rows, disagree = timed_rows(methods, "fresh process: NumPy by hand", data, int(repeats_1), int(repeats_big), extra)
    check = {"rows_checked": sum(BATCHES), "disagreements": disagree, "synchronous_dispatch": sync}
    (where / "result.json").write_text(json.dumps({"rows": rows, "check": check}))
