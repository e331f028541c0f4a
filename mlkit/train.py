"""Training: one frozen config, one loss function, a whole epoch fused into one compiled call.

``fit`` splits the nnx model once into a static graph and array state, then runs
pure compiled functions: the epoch shuffles on the device and scans over its
mini-batches with ``lax.scan``; validation sees every example exactly once.
Hyperparameters that change no shape (learning rate, weight decay, momentum)
live in the optimiser state, so changing them compiles nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from mlkit import parallel
from mlkit.compiled import compiled
from mlkit.data import Dataset, Split

OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyperparameter in one place. Unknown names are errors."""

    epochs: int = 20  # passes over the training split
    batch_size: int = 32  # examples per gradient step; the last partial batch of an epoch is dropped
    learning_rate: float = 1e-3  # step size; traced, so changing it does not recompile
    optimizer: str = "adam"  # "sgd", "momentum" (heavy ball) or "adam" (AdamW-style decay)
    momentum: float = 0.9  # used by "momentum"
    weight_decay: float = 0.0  # shrinks weights towards zero each step; traced
    patience: int | None = None  # early stopping: epochs without a better val loss before stopping
    seed: int = 0  # shuffling order
    shuffle: bool = True  # reshuffle every epoch; False feeds batches in stored order (to see why we shuffle)
    progress: bool = True  # show a progress bar

    def __post_init__(self):
        problems = []
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append(f"learning_rate must be a positive number, got {self.learning_rate!r} (try 1e-3)")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            problems.append(f"patience must be None or a whole number >= 1, got {self.patience!r}")
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems) + ".")

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class History:
    """What happened, epoch by epoch. ``status`` is one of "completed", "early_stopped",
    "stopped" (a callback asked), "diverged" or "interrupted" (Ctrl-C)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)  # seconds of steady-state work per epoch
    compile_time: float = 0.0  # seconds spent compiling in this fit (0 when everything was cached)
    status: str = "running"
    message: str = ""
    best_epoch: int | None = None  # 1-based epoch with the lowest validation loss

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __repr__(self) -> str:
        if not self.epochs:
            return f"History(status={self.status!r}, no epochs finished)"
        return (f"History({self.epochs} epochs, status={self.status!r}, train_loss={self.train_loss[-1]:.4f}, "
                f"val_loss={self.val_loss[-1]:.4f}, val_acc={self.val_acc[-1]:.4f}, "
                f"compile={self.compile_time:.2f}s, epoch={np.median(self.epoch_time) * 1e3:.1f}ms)")


def _optimizer(learning_rate, weight_decay, momentum, kind="adam") -> optax.GradientTransformation:
    if kind == "adam":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(learning_rate, momentum=momentum if kind == "momentum" else None))


# The numeric hyperparameters become optimiser *state*: new values are new data, not new code.
_injected = optax.inject_hyperparams(_optimizer, static_args="kind")


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optimiser named in ``config`` with its numeric hyperparameters injected as state."""
    return _injected(config.learning_rate, config.weight_decay, config.momentum, kind=config.optimizer)


def per_example_loss(outputs: jax.Array, y: jax.Array, task: str) -> tuple[jax.Array, jax.Array]:
    """Loss and correctness of each example: cross-entropy from logits, or squared error."""
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, y), outputs.argmax(-1) == y
    return (outputs[:, 0] - y) ** 2, jnp.zeros(y.shape, bool)


def _loss_fn(graphdef, task, params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    losses, correct = per_example_loss(model(x), y, task)
    return losses.mean(), (nnx.state(model, nnx.Not(nnx.Param)), correct.sum())


def train_step(graphdef, task, kind, carry, batch):
    """One gradient step on one batch: the whole of training, in four lines."""
    params, rest, opt_state = carry
    (loss, (rest, correct)), grads = jax.value_and_grad(_loss_fn, argnums=2, has_aux=True)(
        graphdef, task, params, rest, *batch)
    updates, opt_state = _injected(0.0, 0.0, 0.0, kind=kind).update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), rest, opt_state), (loss, correct)


def train_epoch(graphdef, task, kind, batch_size, shuffle, state, x, y, key):
    """One (shuffled) pass over (x, y) as a single scan of train steps."""
    steps = x.shape[0] // batch_size
    order = jax.random.permutation(key, x.shape[0]) if shuffle else jnp.arange(x.shape[0])
    order = order[: steps * batch_size].reshape(steps, batch_size)
    batch = lambda idx: parallel.shard_batch((x[idx], y[idx]))  # noqa: E731  (split over a mesh if fit set one)
    step = lambda carry, idx: train_step(graphdef, task, kind, carry, batch(idx))  # noqa: E731
    state, (losses, correct) = jax.lax.scan(step, state, order)
    return state, losses.mean(), correct.sum() / (steps * batch_size)


def eval_epoch(graphdef, task, chunk, params, rest, x, y):
    """Mean loss and accuracy over every example exactly once (padded chunks, padding masked out)."""
    n = x.shape[0]
    chunks = -(-n // chunk)
    pad = chunks * chunk - n
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(chunks, chunk, -1)
    ys = jnp.pad(y, (0, pad)).reshape(chunks, chunk)
    mask = (jnp.arange(chunks * chunk) < n).reshape(chunks, chunk)
    model = nnx.merge(graphdef, params, rest, copy=True)

    def body(totals, batch):
        xb, yb, mb = batch
        losses, correct = per_example_loss(model(xb), yb, task)
        return (totals[0] + jnp.where(mb, losses, 0).sum(), totals[1] + (correct & mb).sum()), None

    (loss, correct), _ = jax.lax.scan(body, (jnp.zeros(()), jnp.zeros((), jnp.int32)), (xs, ys, mask))
    return loss / n, correct / n


def eval_view(model: nnx.Module) -> nnx.Module:
    """The same model in inference mode: dropout off, batch norm on its running statistics."""
    return nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)


def evaluate(model: nnx.Module, split: Split, task: str = "classification") -> tuple[float, float]:
    """(mean loss, accuracy) of the model in inference mode on one split."""
    graphdef, params, rest = nnx.split(eval_view(model), nnx.Param, ...)
    x, y = jnp.asarray(split.x), jnp.asarray(split.y)
    run, _ = compiled(eval_epoch, (graphdef, task, min(len(split), 512)), params, rest, x, y)
    loss, acc = run(params, rest, x, y)
    return float(loss), float(acc) if task == "classification" else math.nan


def _forward(graphdef, state, x):
    return nnx.merge(graphdef, state, copy=True)(x)


def apply(model: nnx.Module, x) -> np.ndarray:
    """The model's outputs in inference mode for pre-processed ``x``.

    Unlike ``freeze``, the parameters are arguments, not constants, so calling this
    after every epoch of a live plot compiles once per input shape, not once per epoch.
    """
    graphdef, state = nnx.split(eval_view(model))
    x = jnp.asarray(x, jnp.float32)
    run, _ = compiled(_forward, (graphdef,), state, x)
    return np.asarray(run(state, x))


def fit(
    model: nnx.Module,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    callbacks: Sequence[Callable[[History], bool | None]] = (),
    mesh: jax.sharding.Mesh | None = None,
) -> History:
    """Train ``model`` in place on ``data.train``, validating on ``data.val`` after every epoch.

    Each callback is called as ``callback(history)`` after every epoch, with the
    model already holding that epoch's parameters; returning ``False`` stops
    training. Ctrl-C, divergence and early stopping all leave the model and the
    history at the last good epoch.

    With ``mesh`` (``mlkit.parallel.data_mesh()``) every mini-batch is split across the
    mesh's devices and the gradients averaged by the compiler; the numbers match one device.
    """
    _check_inputs(model, data, config)
    parallel.per_device_batch(config.batch_size, mesh)
    task = data.task
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    eval_graphdef = nnx.graphdef(eval_view(model))
    opt_state = make_optimizer(config).init(params)
    x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
    vx, vy = jnp.asarray(data.val.x), jnp.asarray(data.val.y)
    keys = jax.random.split(jax.random.key(config.seed), config.epochs)

    history = History()
    state, x, y, vx, vy, keys = parallel.replicate(((params, rest, opt_state), x, y, vx, vy, keys), mesh)
    with jax.set_mesh(mesh):  # train_epoch splits each mini-batch over this mesh; None: one device
        epoch_fn, seconds = compiled(train_epoch, (graphdef, task, config.optimizer, config.batch_size,
                                                    config.shuffle),
                                     state, x, y, keys[0])
        eval_fn, seconds_eval = compiled(eval_epoch, (eval_graphdef, task, min(len(vy), 512)), *state[:2], vx, vy)
    history.compile_time = seconds + seconds_eval
    best = (math.inf, state)
    bar = tqdm(total=config.epochs, disable=not config.progress, desc="training", unit="epoch", leave=False)
    try:
        for epoch in range(config.epochs):
            start = time.perf_counter()
            new_state, loss, acc = epoch_fn(state, x, y, keys[epoch])
            val_loss, val_acc = eval_fn(new_state[0], new_state[1], vx, vy)
            loss, acc, val_loss, val_acc = (float(v) for v in (loss, acc, val_loss, val_acc))
            elapsed = time.perf_counter() - start
            if not (math.isfinite(loss) and math.isfinite(val_loss)):
                history.status = "diverged"
                history.message = (f"Training diverged in epoch {epoch + 1}: the loss became {loss}. The model keeps "
                                   f"the parameters of epoch {epoch}. Try a lower learning rate than "
                                   f"{config.learning_rate:g}, e.g. {config.learning_rate / 10:g}.")
                break
            state = new_state
            _record(history, loss, acc, val_loss, val_acc, elapsed, task)
            if callbacks:  # they may look at the model; otherwise it is written once, at the end
                nnx.update(model, state[0], state[1])
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}", val_loss=f"{val_loss:.4f}")
            if val_loss < best[0]:
                best = (val_loss, state)
                history.best_epoch = epoch + 1
            if any(callback(history) is False for callback in callbacks):
                history.status = "stopped"
                history.message = f"Stopped by a callback after epoch {epoch + 1}."
                break
            if config.patience is not None and history.epochs - history.best_epoch >= config.patience:
                state = best[1]
                history.status = "early_stopped"
                history.message = (f"No better validation loss for {config.patience} epochs; the model keeps "
                                   f"the best epoch, {history.best_epoch}.")
                break
        else:
            history.status = "completed"
    except KeyboardInterrupt:
        history.status = "interrupted"
        history.message = f"Interrupted; the model and history keep the {history.epochs} finished epochs."
    finally:
        nnx.update(model, state[0], state[1])  # the last good epoch (the best one after early stopping)
        bar.close()
    return history


def _record(history, loss, acc, val_loss, val_acc, elapsed, task):
    regression = task != "classification"
    history.train_loss.append(loss)
    history.train_acc.append(math.nan if regression else acc)
    history.val_loss.append(val_loss)
    history.val_acc.append(math.nan if regression else val_acc)
    history.epoch_time.append(elapsed)


def _check_inputs(model: nnx.Module, data: Dataset, config: TrainConfig) -> None:
    """Fail before compiling, with a message that says what to change."""
    n = len(data.train)
    if config.batch_size > n:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split ({n} examples); "
                         f"use batch_size <= {n}.")
    if len(data.val) == 0:
        raise ValueError("The validation split is empty; load the data with val_fraction > 0.")
    for name, split in (("train", data.train), ("val", data.val)):
        bad = int(np.sum(~np.isfinite(split.x)))
        if bad:
            raise ValueError(f"The {name} split holds {bad} NaN or infinite feature values; "
                             f"clean or drop those rows before training.")
    try:
        view = eval_view(model)
        out = jax.eval_shape(lambda xb: view(xb), jnp.asarray(data.train.x[:2]))
    except Exception as e:  # flax raises several kinds of shape error
        raise ValueError(f"The model does not accept inputs with {data.num_features} features: {e}") from e
    if out.shape != (2, data.num_classes):
        raise ValueError(f"The model outputs {out.shape[1]} values per example but the data set needs "
                         f"{data.num_classes}; build it with num_classes={data.num_classes}.")
