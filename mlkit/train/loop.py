"""``fit``: train a model in place, a whole epoch fused into one compiled call, and its ``History``.

``fit`` splits the nnx model once into a static graph and array state, then runs
pure compiled functions: the epoch shuffles on the device and scans over its
mini-batches with ``lax.scan``; validation sees every example exactly once.
Hyperparameters that change no shape (learning rate, weight decay, momentum)
live in the optimiser state, so changing them compiles nothing.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from mlkit.data import Dataset
from mlkit.models import eval_view, split_params
from mlkit.train import parallel
from mlkit.train.compiled import compiled
from mlkit.train.config import TrainConfig, make_optimizer, optimizer
from mlkit.train.steps import EXPLOSION_FACTOR, NO_SKILL, chance_level, eval_epoch, explosion_limit, skill, train_epoch


@dataclass
class History:
    """What happened, epoch by epoch. ``status`` is one of "completed", "early_stopped",
    "stopped" (a callback asked), "diverged", "learned_nothing" or "interrupted" (Ctrl-C).

    "diverged": a loss became NaN or infinite, or the training loss exceeded ten times its
    starting level (the larger of the chance-level loss and the untrained model's loss; see
    ``mlkit.train.steps.explosion_limit``) in two epochs running, or in the last one. One epoch
    above it is a spike that training may recover from, so it goes on. The model and the history
    then keep the last epoch below the limit.

    A run that would be "completed" or "early_stopped" is then judged by its validation *skill*
    (``mlkit.train.steps.skill``: 0 at chance, 1 perfect). It is "diverged" too when it ended

    * with less than half the skill it had before this fit (a trained model trained further at too
      large a learning rate), or
    * no better than chance (skill below ``NO_SKILL``) after an epoch that was well above it (a fresh
      model that learned, then blew up), or after one epoch's training loss spiked above the limit.

    The model then goes back to its highest skill, before this fit or after an epoch, which the
    message names; the history keeps every epoch, as after early stopping. It is "learned_nothing"
    when it ended no better than chance and never was much better; the model keeps its last epoch.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)  # seconds of steady-state work per epoch
    train_time: list[float] = field(default_factory=list)  # of which the training call (the rest validates)
    compile_time: float = 0.0  # seconds spent compiling in this fit (0 when everything was cached)
    status: str = "running"
    message: str = ""
    best_epoch: int | None = None  # 1-based epoch with the lowest validation loss (among those below the limit)

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __repr__(self) -> str:
        if not self.epochs:
            return f"History(status={self.status!r}, no epochs kept)"
        accuracy = f"val_acc={self.val_acc[-1]:.4f}, " if not math.isnan(self.val_acc[-1]) else ""  # regression: none
        return (
            f"History({self.epochs} epochs, status={self.status!r}, train_loss={self.train_loss[-1]:.4f}, "
            f"val_loss={self.val_loss[-1]:.4f}, {accuracy}"
            f"compile={self.compile_time:.2f}s, epoch={np.median(self.epoch_time) * 1e3:.1f}ms)"
        )


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

    With ``mesh`` (``mlkit.train.parallel.data_mesh()``) every mini-batch is split across the
    mesh's devices and the gradients averaged by the compiler; the numbers match one device.
    """
    _check_inputs(model, data, config)
    parallel.per_device_batch(config.batch_size, mesh)
    task = data.task
    model.train()
    graphdef, params, rest = split_params(model)
    eval_graphdef = nnx.graphdef(eval_view(model))
    opt_state = make_optimizer(config).init(params)
    x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
    vx, vy = jnp.asarray(data.val.x), jnp.asarray(data.val.y)
    keys = _epoch_keys(config.seed, config.epochs)

    history = History()
    state, x, y, vx, vy, keys = parallel.replicate(((params, rest, opt_state), x, y, vx, vy, keys), mesh)
    with catch_interrupts() as interrupted:
        bar = tqdm(total=config.epochs, disable=not config.progress, desc="training", unit="epoch", leave=False)
        try:
            with jax.set_mesh(mesh):  # train_epoch splits each mini-batch over this mesh; None: one device
                static = (graphdef, task, optimizer(config.optimizer), config.batch_size, config.shuffle)
                epoch_fn, seconds = compiled(train_epoch, static, state, x, y, keys[0])
                eval_fn, seconds_eval = compiled(
                    eval_epoch, (eval_graphdef, task, min(len(vy), 512)), *state[:2], vx, vy
                )
            history.compile_time = seconds + seconds_eval
            start_loss, start_acc = (float(v) for v in eval_fn(state[0], state[1], vx, vy))
            limit = explosion_limit(data, start_loss)
            chance = chance_level(data)
            # the highest validation skill so far, from the model as it came: a run may end far worse
            peak = before = (skill(task, chance, start_loss, start_acc), state, 0, start_loss, start_acc)
            best = (math.inf, state)
            calm, spiking = (state, 0), False  # the last epoch at or below the limit: what a diverged run keeps
            for epoch in range(config.epochs):
                if interrupted():
                    raise KeyboardInterrupt
                start = time.perf_counter()
                new_state, loss, acc = epoch_fn(state, x, y, keys[epoch])
                jax.block_until_ready(loss)  # the epoch's last step has run (validation would wait for it anyway)
                trained = time.perf_counter() - start
                val_loss, val_acc = eval_fn(new_state[0], new_state[1], vx, vy)
                loss, acc, val_loss, val_acc = (float(v) for v in (loss, acc, val_loss, val_acc))
                elapsed = time.perf_counter() - start
                exploded = loss > limit
                if not (math.isfinite(loss) and math.isfinite(val_loss)) or (
                    exploded and (spiking or epoch == config.epochs - 1)
                ):
                    state = calm[0]
                    _truncate(history, calm[1])
                    history.status = "diverged"
                    history.message = _diverged_message(epoch, loss, val_loss, limit, calm[1], config)
                    break
                spiking = exploded
                state = new_state
                _record(history, loss, acc, val_loss, val_acc, elapsed, task)
                history.train_time.append(trained)
                if callbacks:  # they may look at the model; otherwise it is written once, at the end
                    nnx.update(model, state[0], state[1])
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}", val_loss=f"{val_loss:.4f}")
                if not exploded:
                    calm = (state, history.epochs)
                    if (now := skill(task, chance, val_loss, val_acc)) > peak[0]:
                        peak = (now, state, epoch + 1, val_loss, val_acc)
                    if val_loss < best[0]:
                        best = (val_loss, state)
                        history.best_epoch = epoch + 1
                if any(callback(history) is False for callback in callbacks):
                    history.status = "stopped"
                    history.message = f"Stopped by a callback after epoch {epoch + 1}."
                    break
                if config.patience is not None and history.epochs - (history.best_epoch or 0) >= config.patience:
                    state = best[1]
                    history.status = "early_stopped"
                    history.message = (
                        f"No better validation loss for {config.patience} epochs; the model keeps "
                        f"the best epoch, {history.best_epoch}."
                    )
                    break
            else:
                history.status = "completed"
            if interrupted():  # Ctrl-C during the last epoch: still an interrupted run
                raise KeyboardInterrupt
            if history.status in ("completed", "early_stopped"):
                state = _judge(history, data, config, before, peak, limit) or state
        except KeyboardInterrupt:
            history.status = "interrupted"
            history.message = f"Interrupted (Ctrl-C); the model and history keep the {history.epochs} finished epochs."
        finally:
            nnx.update(model, state[0], state[1])  # the last good epoch (the best one after early stopping)
            bar.close()
    return history


@contextlib.contextmanager
def catch_interrupts() -> Iterator[Callable[[], bool]]:
    """Ctrl-C (SIGINT) as a flag for the ``with`` block: yields ``interrupted()``, true once Ctrl-C was pressed.

    A ``KeyboardInterrupt`` raised while JAX's garbage-collection callback runs is printed as
    "Exception ignored" and lost, so training would go on to the end; a flag is never lost. A second
    Ctrl-C raises ``KeyboardInterrupt`` at once, for a long step. The previous handler comes back after
    the block. Outside the main thread (a dashboard's), signals cannot be caught, and the flag stays false.
    """
    pressed = []

    def handler(signum, frame):
        pressed.append(signum)
        if len(pressed) > 1:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)


def _judge(
    history: History, data: Dataset, config: TrainConfig, start: tuple, peak: tuple, limit: float
) -> tuple | None:
    """Mark a finished run that ended far worse than it began, or no better than chance; returns the state
    the model goes back to (None: it keeps the one it has). ``start`` and ``peak`` are (skill, state, epoch,
    loss, acc): the model before this fit (epoch 0), and the highest skill of it or an epoch below the limit."""
    kept = (history.best_epoch or history.epochs) if history.status == "early_stopped" else history.epochs
    loss, acc = history.val_loss[kept - 1], history.val_acc[kept - 1]
    end = skill(data.task, chance_level(data), loss, acc)
    lower = f"Try a lower learning rate than {config.learning_rate:g}, e.g. {config.learning_rate / 10:g}."
    now = f"{_score(data, loss, acc)} after epoch {kept}"
    keeps = "the parameters it had before this fit" if peak[2] == 0 else f"the parameters of epoch {peak[2]}"
    if start[0] >= 2 * NO_SKILL and end < start[0] / 2:
        what = f"far worse than it began: validation {_score(data, start[3], start[4])} before this fit, {now}"
    elif end < NO_SKILL and peak[0] >= 2 * NO_SKILL:
        what = f"no better than {_chance(data)}: validation {now}, {_score(data, peak[3], peak[4])} in epoch {peak[2]}"
    elif (
        end < NO_SKILL and (spike := next((i for i, v in enumerate(history.train_loss) if v > limit), None)) is not None
    ):
        what = (
            f"no better than {_chance(data)}: validation {now}, after the training loss spiked to "
            f"{history.train_loss[spike]:.4g} in epoch {spike + 1}, more than {EXPLOSION_FACTOR:g}x its starting "
            f"level ({limit / EXPLOSION_FACTOR:.4g})"
        )
    elif end < NO_SKILL:
        history.status = "learned_nothing"
        jumped = next((i for i, v in enumerate(history.train_loss) if v > limit / EXPLOSION_FACTOR), None)
        hint = (
            f"The training loss jumped above its starting level ({history.train_loss[jumped]:.4g} in epoch "
            f"{jumped + 1}): t{lower[1:]}"
            if jumped is not None
            else f"Try a higher learning rate than {config.learning_rate:g}, more epochs or a larger model."
        )
        history.message = f"The model learned nothing: validation {now} is no better than {_chance(data)}. {hint}"
        return None
    else:
        return None
    history.status = "diverged"
    history.message = f"Training ended {what}. The model keeps {keeps}. {lower}"
    return peak[1]


def _score(data: Dataset, loss: float, acc: float) -> str:
    return f"accuracy {acc:.1%}" if data.task == "classification" else f"loss {loss:.4g}"


def _chance(data: Dataset) -> str:
    if data.task == "classification":
        return f"chance ({chance_level(data):.1%}, always answering the commonest class)"
    return f"always answering the training mean (loss {chance_level(data):.4g})"


def _diverged_message(epoch: int, loss: float, val_loss: float, limit: float, kept: int, config: TrainConfig) -> str:
    if not math.isfinite(loss) or not math.isfinite(val_loss):
        what = f"the {'training' if not math.isfinite(loss) else 'validation'} loss became " + str(
            loss if not math.isfinite(loss) else val_loss
        )
    else:
        what = (
            f"the training loss reached {loss:.4g}, more than {EXPLOSION_FACTOR:g}x its starting level "
            f"({limit / EXPLOSION_FACTOR:.4g})"
        )
    which = f"the parameters of epoch {kept}" if kept else "the parameters it had before this fit"
    return (
        f"Training diverged in epoch {epoch + 1}: {what}. The model keeps {which}. "
        f"Try a lower learning rate than {config.learning_rate:g}, e.g. {config.learning_rate / 10:g}."
    )


def _epoch_keys(seed: int, epochs: int) -> list[jax.Array]:
    """``jax.random.split(jax.random.key(seed), epochs)`` as one key per epoch, made before the clock starts:
    indexing the split array inside the loop would cost every epoch a dispatch (~70 us on a 2-core CPU)."""
    keys = jax.random.split(jax.random.key(seed), epochs)
    data, impl = np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)
    return [jax.random.wrap_key_data(jnp.asarray(row), impl=impl) for row in data]


def _truncate(history: History, epochs: int) -> None:
    """Forget the epochs after ``epochs`` (a spike that turned into divergence), so history matches the model."""
    for curve in (history.train_loss, history.train_acc, history.val_loss, history.val_acc, history.epoch_time):
        del curve[epochs:]
    del history.train_time[epochs:]


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
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training split ({n} examples); use batch_size <= {n}."
        )
    if len(data.val) == 0:
        raise ValueError("The validation split is empty; load the data with val_fraction > 0.")
    for name, split in (("train", data.train), ("val", data.val)):
        for what, values in (("feature", split.x), ("target", split.y)):
            bad = int(np.sum(~np.isfinite(values)))
            if bad:
                raise ValueError(
                    f"The {name} split holds {bad} NaN or infinite {what} values; "
                    f"clean or drop those rows before training."
                )
    try:
        view = eval_view(model)
        out = jax.eval_shape(lambda xb: view(xb), jnp.asarray(data.train.x[:2]))
    except Exception as e:  # flax raises several kinds of shape error
        raise ValueError(f"The model does not accept inputs with {data.num_features} features: {e}") from e
    if out.shape != (2, data.num_classes):
        raise ValueError(
            f"The model outputs {out.shape[1]} values per example but the data set needs "
            f"{data.num_classes}; build it with num_classes={data.num_classes}."
        )
