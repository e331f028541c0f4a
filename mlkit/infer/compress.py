"""Making a trained model lean for inference: fold, quantise, prune, and measure what each costs.

Inference needs less than training did. Dropout is already gone in the eval
view. Batch norm with frozen statistics is an affine map, and so is the input
standardisation ``(x - mean) / scale``, so both fold into the neighbouring
Linear weights: an MLP with batch norm becomes plain Linear layers that take
raw inputs. The folded weights can then be stored in fewer bits (bfloat16, or
int8 with one scale per output channel, turned back into float32 inside the
compiled function) or thinned by magnitude pruning.

Every variant is a :class:`~mlkit.infer.Predictor` whose ``params`` are the
arrays it really holds (int8 is int8), so sizes are honest and lessons can swap
variants freely. :func:`report` puts size, accuracy and latency side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mlkit import bench
from mlkit.data import Dataset, Preprocessor, Split
from mlkit.infer.predictor import Predictor, accuracy, freeze
from mlkit.models import ACTIVATIONS, MLP, LogisticRegression

PRECISIONS = ("float32", "bfloat16", "int8")

Layer = dict  # {"w": (in, out) weights, "b": (out,) biases, optional "scale": (out,) int8 dequantisation scales}


def dense_layers(model: nnx.Module, preprocessor: Preprocessor | None = None) -> tuple[list[Layer], str]:
    """The model as plain float32 Linear layers, and the activation between them.

    Batch norm (running statistics) is folded into the Linear before it; dropout
    is dropped; with ``preprocessor`` the standardisation is folded into the first
    layer, so the layers take raw inputs. Arithmetic is in float64, then rounded once.
    """
    layers, activation = _layers64(model)
    if preprocessor is not None:
        layers = _fold_input(layers, preprocessor)
    return [{k: v.astype(np.float32) for k, v in layer.items()} for layer in layers], activation


def fold(model: nnx.Module, data: Dataset) -> Predictor:
    """The model with batch norm and pre-processing folded in: same answers, raw inputs, fewer operations."""
    layers, activation = dense_layers(model, data.preprocessor)
    return layers_predictor(layers, activation, data)


def quantize(model: nnx.Module, data: Dataset, dtype: str = "int8") -> Predictor:
    """The folded model with weights stored as ``"int8"`` (per-output-channel scales) or ``"bfloat16"``.

    int8 keeps the biases and scales in float32 (a few hundred numbers); bfloat16 stores everything in 16 bits.
    """
    layers, activation = dense_layers(model, data.preprocessor)
    if dtype == "int8":
        layers = [int8_layer(layer) for layer in layers]
    elif dtype in ("bfloat16", "bf16"):
        layers = [{k: v.astype(jnp.bfloat16) for k, v in layer.items()} for layer in layers]
    else:
        raise ValueError(f"dtype must be 'int8' or 'bfloat16', got {dtype!r}.")
    return layers_predictor(layers, activation, data)


def prune(model: nnx.Module, data: Dataset, sparsity: float) -> Predictor:
    """The folded model with the smallest ``sparsity`` fraction of each weight matrix set to zero (biases kept).

    Magnitudes are compared before the input scaling is folded in, so every input
    feature is judged on the standardised scale the model was trained on. The
    zeros are stored densely: the size does not shrink, only the nonzero count.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(
            f"sparsity is the fraction of weights set to zero: expected 0 <= sparsity < 1, got {sparsity}."
        )
    layers, activation = _layers64(model)
    for layer in layers:
        w = layer["w"] = layer["w"].copy()
        smallest = np.argsort(np.abs(w), axis=None, kind="stable")[: round(sparsity * w.size)]
        w.flat[smallest] = 0.0
    layers = _fold_input(layers, data.preprocessor)
    return layers_predictor([{k: v.astype(np.float32) for k, v in layer.items()} for layer in layers], activation, data)


def layers_predictor(layers: Sequence[Layer], activation: str, data: Dataset) -> Predictor:
    """A Predictor running ``layers`` on raw inputs; weights are cast to float32 inside the compiled function."""
    act, classify = ACTIVATIONS[activation], data.task == "classification"
    layers = [dict(layer) for layer in layers]

    def forward(x):
        for i, layer in enumerate(layers):
            x = x @ jnp.asarray(layer["w"]).astype(jnp.float32)
            if "scale" in layer:  # int8: x @ (q * scale) == (x @ q) * scale, one scale per output column
                x = x * jnp.asarray(layer["scale"])[None, :]
            x = x + jnp.asarray(layer["b"]).astype(jnp.float32)[None, :]
            if i < len(layers) - 1:
                x = act(x)
        return jax.nn.softmax(x, axis=-1) if classify else x

    n = layers[0]["w"].shape[0]
    identity = Preprocessor.fit(np.zeros((1, n), np.float32), "none")  # the inputs stay raw: it is folded in
    return Predictor(forward, n, data.labels, task=data.task, preprocessor=identity, params={"layers": layers})


def lean(model: nnx.Module, data: Dataset, precision: str = "float32", sparsity: float = 0.0) -> Predictor:
    """The folded model, magnitude-pruned to ``sparsity`` and then stored in ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    layers = prune(model, data, sparsity).params["layers"]
    if precision == "int8":
        layers = [int8_layer(layer) for layer in layers]
    elif precision == "bfloat16":
        layers = [{k: v.astype(jnp.bfloat16) for k, v in layer.items()} for layer in layers]
    return layers_predictor(layers, dense_layers(model)[1], data)


def variants(
    model: nnx.Module, data: Dataset, *, sparsities: Sequence[float] = (0.5, 0.8, 0.9)
) -> dict[str, Predictor]:
    """Every variant by name: original, folded, bf16, int8 and pruned at each sparsity."""
    out = {
        "original": freeze(model, data),
        "folded": fold(model, data),
        "bf16": quantize(model, data, "bfloat16"),
        "int8": quantize(model, data, "int8"),
    }
    out.update({f"pruned {s:.0%}": prune(model, data, s) for s in sparsities})
    return out


@dataclass(frozen=True)
class Row:
    """One variant's measurements. ``nbytes`` is the size as stored (dense); ``sparse_nbytes`` what
    the same numbers would take with 2-D weights in CSR form (value + int32 column per nonzero)."""

    name: str
    nbytes: int  # bytes of every array the predictor holds, zeros included
    sparse_nbytes: int
    nonzero: int  # numbers that are not zero
    params: int  # numbers held, zero or not
    accuracy: float
    latency: float  # seconds, median batch-1 call of the compiled function


@dataclass(frozen=True)
class Report:
    """Size, accuracy and batch-1 latency of each variant; the first row is the baseline."""

    rows: tuple[Row, ...]
    split: str = "test"

    def __getitem__(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"No variant {name!r}; the report has {[row.name for row in self.rows]}.")

    def __str__(self) -> str:
        base = self.rows[0]
        header = (
            f"{'variant':<12} {'bytes':>9} {'size':>6} {'nonzero':>8} {'CSR bytes':>10} "
            f"{self.split + ' acc':>9} {'Δ points':>8} {'batch-1 µs':>10} {'speed-up':>8}"
        )
        lines = [
            f"{r.name:<12} {r.nbytes:>9,} {r.nbytes / base.nbytes:>6.0%} {r.nonzero / r.params:>8.0%} "
            f"{r.sparse_nbytes:>10,} {r.accuracy:>9.4f} {100 * (r.accuracy - base.accuracy):>+8.2f} "
            f"{r.latency * 1e6:>10.1f} {base.latency / r.latency:>7.2f}x"
            for r in self.rows
        ]
        note = "sizes are as stored (dense); CSR bytes: the same numbers stored sparse"
        return "\n".join([header, *lines, note])


def measure(predictors: Mapping[str, Predictor], split: Split, *, name: str = "test", repeats: int = 100) -> Report:
    """Measure each predictor on ``split`` (it must hold class ids ``y`` and raw inputs ``raw_x``)."""
    rows = []
    for label, predictor in predictors.items():
        if predictor.task != "classification":
            raise ValueError(f"measure compares classifiers by accuracy; {label!r} does {predictor.task}.")
        if predictor.params is None:
            raise ValueError(
                f"{label!r} does not say which arrays it holds (params=None), so its size is unknown; "
                f"measure predictors made by freeze or mlkit.compress, not loaded artifacts."
            )
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(predictor.params)]
        rows.append(
            Row(
                label,
                sum(a.nbytes for a in leaves),
                sum(_csr_bytes(a) for a in leaves),
                sum(int(np.count_nonzero(a)) for a in leaves),
                sum(a.size for a in leaves),
                accuracy(predictor, split),
                0.0,
            )
        )
    times = _latencies(list(predictors.values()), split.raw_x[:1], repeats)
    return Report(tuple(dataclasses.replace(row, latency=t) for row, t in zip(rows, times, strict=True)), name)


def report(
    model: nnx.Module,
    data: Dataset,
    *,
    split: str = "test",
    sparsities: Sequence[float] = (0.5, 0.8, 0.9),
    repeats: int = 100,
) -> Report:
    """Build every variant of ``model`` and measure it on ``data``'s ``split``; ``print`` it for a table."""
    return measure(variants(model, data, sparsities=sparsities), getattr(data, split), name=split, repeats=repeats)


def latency(predictor: Predictor, x: np.ndarray, repeats: int = 100) -> float:
    """Median seconds per call of the compiled function on ``x``: compile and warm-up excluded, results awaited."""
    return _latencies([predictor], x, repeats)[0]


def _latencies(predictors: Sequence[Predictor], x: np.ndarray, repeats: int) -> list[float]:
    """Median call time of each predictor's compiled function, timed in turns (``bench.compare``)
    so a busy machine slows all of them alike."""
    runs = {str(i): predictor.executable(len(x)) for i, predictor in enumerate(predictors)}
    rounds = max(repeats // 10, 1)
    timings = bench.compare(runs, bench.on_device(np.asarray(x, np.float32)), rounds=rounds, calls=repeats // rounds)
    return [timings[name].p50 for name in runs]


def _layers64(model: nnx.Module) -> tuple[list[Layer], str]:
    if isinstance(model, MLP):
        linears, norms, activation = [*model.layers, model.head], list(model.norms), model.activation
    elif isinstance(model, LogisticRegression):
        linears, norms, activation = [model.linear], [], "linear"
    else:
        raise TypeError(
            f"compress folds Linear layers: expected an MLP or LogisticRegression, got "
            f"{type(model).__name__}. For other models, use mlkit.freeze."
        )
    layers = []
    for i, linear in enumerate(linears):
        w = np.asarray(linear.kernel[...], np.float64)
        b = np.asarray(linear.bias[...], np.float64) if linear.bias is not None else np.zeros(w.shape[1])
        if i < len(norms):  # y = (z - mean) / sqrt(var + eps) * gamma + beta, with z = x @ w + b
            bn = norms[i]
            gamma = np.asarray(bn.scale[...], np.float64) if bn.scale is not None else 1.0
            beta = np.asarray(bn.bias[...], np.float64) if bn.bias is not None else 0.0
            k = gamma / np.sqrt(np.asarray(bn.var[...], np.float64) + bn.epsilon)
            w, b = w * k[None, :], (b - np.asarray(bn.mean[...], np.float64)) * k + beta
        layers.append({"w": w, "b": b})
    return layers, activation


def _fold_input(layers: list[Layer], preprocessor: Preprocessor) -> list[Layer]:
    """((x - mean) / scale) @ w + b  ==  x @ (w / scale) + (b - (mean / scale) @ w)."""
    mean, scale = np.asarray(preprocessor.mean, np.float64), np.asarray(preprocessor.scale, np.float64)
    w, b = layers[0]["w"], layers[0]["b"]
    return [{"w": w / scale[:, None], "b": b - (mean / scale) @ w}, *layers[1:]]


def int8_layer(layer: Layer) -> Layer:
    """Symmetric int8 with one scale per output column: w ≈ q * scale, q in [-127, 127]."""
    w = layer["w"].astype(np.float64)
    scale = np.abs(w).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(w / scale[None, :]), -127, 127).astype(np.int8)
    return {"w": q, "scale": scale.astype(np.float32), "b": layer["b"]}


def _csr_bytes(a: np.ndarray) -> int:
    if a.ndim != 2:
        return a.nbytes
    return int(np.count_nonzero(a)) * (a.itemsize + 4) + (a.shape[0] + 1) * 4
