"""Training: learn parameters from labelled data.

``TrainConfig`` and ``fit`` (one compiled call per epoch), the pure steps they
run, many runs at once (``sweep``), checkpoints, and data parallelism over a
device mesh (``parallel``).
"""

from mlkit.train import compiled, parallel
from mlkit.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mlkit.train.config import OPTIMIZERS, TrainConfig, make_optimizer, optimizer
from mlkit.train.loop import History, fit
from mlkit.train.steps import apply, eval_epoch, evaluate, per_example_loss, train_epoch, train_step
from mlkit.train.sweeps import SweepResult, sweep

__all__ = [
    "OPTIMIZERS",
    "Checkpoint",
    "History",
    "SweepResult",
    "TrainConfig",
    "apply",
    "compiled",
    "eval_epoch",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_optimizer",
    "optimizer",
    "parallel",
    "per_example_loss",
    "save_checkpoint",
    "sweep",
    "train_epoch",
    "train_step",
]
