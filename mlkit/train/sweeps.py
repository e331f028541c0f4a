"""Many training runs at once: ``jax.vmap`` over learning rates and seeds, one compiled call per epoch.

Small models leave most of a CPU idle; stacking runs along a new leading axis
turns many small matrix products into a few larger ones. Every run sees the
same data; each has its own learning rate, initial weights and shuffling.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mlkit.data import Dataset
from mlkit.models import eval_view, split_params
from mlkit.train.compiled import compiled
from mlkit.train.config import TrainConfig, make_optimizer, optimizer
from mlkit.train.steps import NO_SKILL, chance_level, eval_epoch, explosion_limit, skill, train_epoch


@dataclass
class SweepResult:
    """Per-run curves, shape (runs, epochs); run ``i`` used ``learning_rates[i]`` and ``seeds[i]``.

    Unlike ``fit``, a sweep does not stop a run that diverges: its later curve values and its
    weights are whatever the blown-up updates left, so read ``status`` before using them."""

    learning_rates: np.ndarray
    seeds: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    status: np.ndarray  # (runs,) "completed", "diverged" or "learned_nothing" (the rules of ``fit``; see ``History``)
    seconds: float  # steady-state training and validation time, all runs together
    compile_time: float
    _graphdef: Any = field(repr=False, default=None)  # nnx.GraphDef of the model
    _states: tuple = field(repr=False, default=())

    def best(self) -> int:
        """Index of the run with the lowest final validation loss among the runs that did not diverge."""
        ok = self.status != "diverged"
        if not ok.any():
            raise ValueError(
                f"Every run diverged (learning rates {self.learning_rates.min():g} to "
                f"{self.learning_rates.max():g}); sweep lower learning rates."
            )
        return int(np.where(ok, self.val_loss[:, -1], np.inf).argmin())

    def model(self, run: int) -> nnx.Module:
        """The trained model of one run, in inference mode."""
        params, rest = jax.tree.map(lambda a: a[run], self._states)
        return eval_view(nnx.merge(self._graphdef, params, rest))


def diverged_runs(train_loss: np.ndarray, val_loss: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Which runs (rows) diverged by ``fit``'s rule: a loss not finite, or the training loss above the run's
    limit in two epochs running or in the last one (one epoch above it is a spike, see ``History``)."""
    over = train_loss > limits
    return (
        (~np.isfinite(train_loss) | ~np.isfinite(val_loss)).any(axis=1)
        | (over[:, 1:] & over[:, :-1]).any(axis=1)
        | over[:, -1]
    )


def judged_runs(
    data: Dataset,
    start: tuple[np.ndarray, np.ndarray],
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    val_acc: np.ndarray,
    limits: np.ndarray,
) -> np.ndarray:
    """Each run's status by ``fit``'s rules (see ``History``), from its curves and ``start``, the validation
    (loss, accuracy) of each run before training: "diverged" (exploded, far worse than it began, or at chance
    after an epoch well above it or a spike), "learned_nothing" (at chance throughout) or "completed"."""
    chance = chance_level(data)
    score = np.vectorize(lambda loss, acc: skill(data.task, chance, float(loss), float(acc)), otypes=[float])
    before, curve = score(*start), score(val_loss, val_acc)  # (runs,), (runs, epochs)
    calm = np.where(train_loss <= limits, curve, -np.inf)
    peak = np.maximum(before, calm.max(axis=1))
    end = curve[:, -1]
    spiked = (train_loss > limits).any(axis=1)
    worse = ((before >= 2 * NO_SKILL) & (end < before / 2)) | ((end < NO_SKILL) & ((peak >= 2 * NO_SKILL) | spiked))
    status = np.where(end < NO_SKILL, "learned_nothing", "completed").astype(object)
    status[worse | diverged_runs(train_loss, val_loss, limits)] = "diverged"
    return status.astype(str)


def sweep_epoch(graphdef, task, tx, batch_size, shuffle, states, x, y, keys):
    one = functools.partial(train_epoch, graphdef, task, tx, batch_size, shuffle)
    return jax.vmap(one, in_axes=(0, None, None, 0))(states, x, y, keys)


def sweep_eval(graphdef, task, chunk, params, rest, x, y):
    one = functools.partial(eval_epoch, graphdef, task, chunk)
    return jax.vmap(one, in_axes=(0, 0, None, None))(params, rest, x, y)


def sweep(
    model_fn: Callable[[int], nnx.Module],
    data: Dataset,
    config: TrainConfig,
    *,
    learning_rates: Sequence[float] | None = None,
    seeds: Sequence[int] = (0,),
) -> SweepResult:
    """Train ``model_fn(seed)`` for every (learning rate, seed) pair at once; no early stopping."""
    runs = list(itertools.product(learning_rates or [config.learning_rate], seeds))
    if config.batch_size > len(data.train):
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split ({len(data.train)}).")
    states, graphdefs = [], set()
    for lr, seed in runs:
        model = model_fn(seed)
        model.train()
        graphdef, params, rest = split_params(model)
        graphdefs.add(graphdef)
        states.append((params, rest, make_optimizer(config.replace(learning_rate=lr)).init(params)))
    if len(graphdefs) != 1:
        raise ValueError("model_fn must build the same architecture for every seed; only the weights may differ.")
    state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    eval_graphdef = nnx.graphdef(eval_view(model))
    x, y, vx, vy = (jnp.asarray(a) for a in (data.train.x, data.train.y, data.val.x, data.val.y))
    keys = jnp.stack([jax.random.split(jax.random.key(seed), config.epochs) for _, seed in runs])
    static = (graphdef, data.task, optimizer(config.optimizer), config.batch_size, config.shuffle)
    with jax.set_mesh(None):  # one device: a mesh the user set globally must not split these runs
        epoch_fn, compile_train = compiled(sweep_epoch, static, state, x, y, keys[:, 0])
        eval_fn, compile_eval = compiled(
            sweep_eval, (eval_graphdef, data.task, min(len(vy), 512)), state[0], state[1], vx, vy
        )
    start_loss, start_acc = eval_fn(state[0], state[1], vx, vy)
    untrained = (np.asarray(start_loss), np.asarray(start_acc))  # each run's validation loss and accuracy
    curves = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        state, loss, _ = epoch_fn(state, x, y, keys[:, epoch])
        curves.append((loss, *eval_fn(state[0], state[1], vx, vy)))
    train_loss, val_loss, val_acc = (np.stack([np.asarray(c[i]) for c in curves], axis=1) for i in range(3))
    seconds = time.perf_counter() - start
    limits = np.array([explosion_limit(data, float(u)) for u in untrained[0]])[:, None]
    return SweepResult(
        np.array([r[0] for r in runs]),
        np.array([r[1] for r in runs]),
        train_loss,
        val_loss,
        val_acc,
        judged_runs(data, untrained, train_loss, val_loss, val_acc, limits),
        seconds,
        compile_train + compile_eval,
        graphdef,
        (state[0], state[1]),
    )
