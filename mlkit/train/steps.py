"""The pure functions training runs: the loss, one step, one scanned epoch, one masked evaluation.

Each takes the model as ``nnx.split`` parts (a static graph and array state), so
``jax.jit`` compiles it once per shape and the hot loop walks no Python objects.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mlkit.data import Dataset, Split
from mlkit.models import eval_view, split_params
from mlkit.train import parallel
from mlkit.train.compiled import compiled


def per_example_loss(outputs: jax.Array, y: jax.Array, task: str) -> tuple[jax.Array, jax.Array]:
    """Loss and correctness of each example: cross-entropy from logits, or squared error."""
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, y), outputs.argmax(-1) == y
    return (outputs[:, 0] - y) ** 2, jnp.zeros(y.shape, bool)


EXPLOSION_FACTOR = 10.0


def explosion_limit(data: Dataset, untrained_loss: float) -> float:
    """The training loss above which a run counts as diverged (exploded, not only NaN).

    The start level is the larger of the chance-level loss (cross-entropy of a uniform guess, ln K,
    or the mean squared error of always predicting the training mean) and the loss of the untrained
    model; a run diverges when its training loss exceeds ``EXPLOSION_FACTOR`` times that. Learning
    only lowers the loss, so ten times the start is never reached by a run that learns, while a step
    that is too large for the curvature grows it by orders of magnitude within an epoch.
    """
    if data.task == "classification":
        chance = math.log(max(data.num_classes, 2))
    else:
        chance = float(np.var(np.asarray(data.train.y, np.float64)))
    start = max(chance, untrained_loss) if math.isfinite(untrained_loss) else chance
    return EXPLOSION_FACTOR * max(start, 1e-12)


NO_SKILL = 0.1  # a run whose validation skill ends below this learned nothing (see ``skill``)


def chance_level(data: Dataset) -> float:
    """What a model that learned nothing scores on the validation split: the accuracy of always answering
    the commonest class, or (regression) the mean squared error of always answering the training mean."""
    if data.task == "classification":
        return float(np.bincount(np.asarray(data.val.y)).max() / len(data.val))
    y = np.asarray(data.val.y, np.float64)
    return float(np.mean((y - np.mean(np.asarray(data.train.y, np.float64))) ** 2))


def skill(task: str, chance: float, val_loss: float, val_acc: float) -> float:
    """How far a validation score is from ``chance`` (``chance_level(data)``) towards perfect: 0 at chance,
    1 perfect, below 0 worse.

    For a classifier ``(accuracy - chance) / (1 - chance)``; for regression ``1 - loss / chance``
    (the coefficient of determination, R², against the training mean). NaN scores no skill (-inf).
    """
    if task == "classification":
        value = (val_acc - chance) / max(1 - chance, 1e-12)
    else:
        value = 1 - val_loss / max(chance, 1e-12)
    return value if math.isfinite(value) else -math.inf


def _loss_fn(graphdef, task, params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    losses, correct = per_example_loss(model(x), y, task)
    return losses.mean(), (nnx.state(model, nnx.Not(nnx.Param)), correct.sum())


def train_step(graphdef, task, tx: optax.GradientTransformation, carry, batch):
    """One gradient step on one batch with the optimiser ``tx``: the whole of training, in four lines."""
    params, rest, opt_state = carry
    (loss, (rest, correct)), grads = jax.value_and_grad(_loss_fn, argnums=2, has_aux=True)(
        graphdef, task, params, rest, *batch
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), rest, opt_state), (loss, correct)


def _unroll(steps: int, batch_size: int) -> int:
    """Train steps per iteration of the epoch's ``lax.scan`` (its ``unroll``), chosen from timings on a 2-core CPU.

    An epoch of at most 6 steps runs fastest as straight-line code, no loop at all (4-8% faster at batch
    192-512 of the 64-256-256-10 MLP on the digits). Cheap steps (batch <= 64) gain up to 30% from two
    steps per iteration: XLA copies the carried weights that the backward pass still reads once per
    iteration, and each iteration ends in a join of its thread pool. Steps of 96-192 rows ran 2-7%
    slower unrolled, so they keep one per iteration. The operations are the same either way, but XLA
    fuses them differently, so a loss can differ in its last bit from another choice; the same choice
    (same shapes) always gives the same numbers.
    """
    if steps <= 6:
        return max(steps, 1)
    return 2 if batch_size <= 64 else 1


def train_epoch(graphdef, task, tx, batch_size, shuffle, state, x, y, key):
    """One (shuffled) pass over (x, y) as a single scan of train steps with the optimiser ``tx``.

    ``tx`` is a static argument, part of the compiled program's cache key: pass the one object
    :func:`mlkit.train.config.optimizer` keeps per kind, whose hyperparameters are in ``state``.
    """
    steps = x.shape[0] // batch_size
    order = jax.random.permutation(key, x.shape[0]) if shuffle else jnp.arange(x.shape[0])
    order = order[: steps * batch_size].reshape(steps, batch_size)
    batch = lambda idx: parallel.shard_batch((x[idx], y[idx]))
    step = lambda carry, idx: train_step(graphdef, task, tx, carry, batch(idx))
    state, (losses, correct) = jax.lax.scan(step, state, order, unroll=_unroll(steps, batch_size))
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


def evaluate(model: nnx.Module, split: Split, task: str = "classification") -> tuple[float, float]:
    """(mean loss, accuracy) of the model in inference mode on one split."""
    graphdef, params, rest = split_params(eval_view(model))
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
