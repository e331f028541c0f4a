"""Every training hyperparameter in one frozen config, and the optimiser it names.

Learning rate, weight decay and momentum become optimiser *state*
(``optax.inject_hyperparams``): a new value is new data, not new code, so
changing one compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from dataclasses import dataclass, field

import optax

OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyperparameter in one place. Unknown names are errors.

    Each field's metadata holds its option of ``python -m mlkit train`` and its help, so the
    command line's options, defaults and help are these (a boolean is a pair: ``--shuffle`` /
    ``--no-shuffle``).
    """

    epochs: int = field(default=20, metadata={"option": "--epochs", "help": "passes over the training split"})
    batch_size: int = field(
        default=32,
        metadata={
            "option": "--batch-size",
            "help": "examples per gradient step; the last partial batch of an epoch is dropped",
        },
    )
    learning_rate: float = field(
        default=1e-3,
        metadata={"option": "--lr", "help": "learning rate: the step size; traced, so changing it compiles nothing"},
    )
    optimizer: str = field(
        default="adam",
        metadata={
            "option": "--optimizer",
            "help": "sgd, momentum (heavy ball) or adam (AdamW-style decay)",
            "choices": OPTIMIZERS,
        },
    )
    momentum: float = field(default=0.9, metadata={"option": "--momentum", "help": "used by --optimizer momentum"})
    weight_decay: float = field(
        default=0.0, metadata={"option": "--weight-decay", "help": "shrinks weights towards zero each step; traced"}
    )
    patience: int | None = field(
        default=None,
        metadata={
            "option": "--patience",
            "help": "early stopping: epochs without a better validation loss before stopping",
        },
    )
    seed: int = field(
        default=0, metadata={"option": "--seed", "help": "shuffling order (the command line also seeds data and model)"}
    )
    shuffle: bool = field(
        default=True,
        metadata={
            "option": "--shuffle",
            "help": "reshuffle every epoch; off feeds batches in stored order (to see why we shuffle)",
        },
    )
    progress: bool = field(default=True, metadata={"option": "--progress", "help": "show a progress bar"})

    def __post_init__(self):
        problems = []
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if not (_number(self.learning_rate) and self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append(f"learning_rate must be a positive number, got {self.learning_rate!r} (try 1e-3)")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (_number(self.momentum) and 0 <= self.momentum < 1):
            problems.append(f"momentum must be a number in [0, 1), got {self.momentum!r}")
        if not (_number(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 1):
            problems.append(f"patience must be None or a whole number >= 1, got {self.patience!r}")
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems) + ".")

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _number(value: object) -> bool:
    """A real number (an int or float, NumPy's included), not a string such as "1e-3" nor a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _optimizer(learning_rate, weight_decay, momentum, kind="adam") -> optax.GradientTransformation:
    if kind == "adam":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(learning_rate, momentum=momentum if kind == "momentum" else None),
    )


# The numeric hyperparameters become optimiser *state*: new values are new data, not new code.
injected = optax.inject_hyperparams(_optimizer, static_args="kind")


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optimiser named in ``config`` with its numeric hyperparameters injected as state.

    ``make_optimizer(config).init(params)`` is the state training starts from; the compiled step
    updates it with :func:`optimizer` of the same kind.
    """
    return injected(config.learning_rate, config.weight_decay, config.momentum, kind=config.optimizer)


@functools.cache
def optimizer(kind: str) -> optax.GradientTransformation:
    """The optimiser ``kind`` (one of ``OPTIMIZERS``), built once and handed to the compiled step.

    Its ``update`` reads the learning rate, weight decay and momentum from the optimiser *state*,
    so this one object steps a state made by ``make_optimizer`` with any values, and, being the same
    object every time, keeps the step's compiled program in the cache: a new value compiles nothing.
    The zeros it is built with are never used: start from ``make_optimizer(config).init(params)``.
    """
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
    return injected(0.0, 0.0, 0.0, kind=kind)
