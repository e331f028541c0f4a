"""mlkit: learn how a network is trained, then how it is used.

The course in order: data → model → training → inference.
"""

import importlib.util

from mlkit.data import Dataset, Preprocessor, Split, batches, load_dataset, make_dataset, with_train, with_train_size
from mlkit.train import History, TrainConfig, apply, evaluate, fit, make_optimizer
from mlkit.infer import Predictor, freeze
from mlkit.artifact import load_predictor
from mlkit.sweep import SweepResult, sweep
from mlkit.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mlkit.compiled import enable_persistent_cache

enable_persistent_cache()

__version__ = "0.1.0"

__all__ = [
    # data
    "Dataset", "Preprocessor", "Split", "batches", "load_dataset", "make_dataset", "with_train",
    "with_train_size",
    # models
    "MLP", "ConvNet", "LogisticRegression", "count_params",
    # training
    "History", "TrainConfig", "apply", "evaluate", "fit", "make_optimizer",
    "Checkpoint", "load_checkpoint", "save_checkpoint",
    # inference
    "Predictor", "freeze", "load_predictor",
    # many runs at once
    "SweepResult", "sweep",
]

# The model classes (and mlkit.compress, mlkit.drift, ...) load on first use (PEP 562), so a
# serving process that only calls load_predictor never imports them: the artifact is enough.
_LAZY = {"MLP": "models", "ConvNet": "models", "LogisticRegression": "models", "count_params": "models"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"mlkit.{_LAZY[name]}"), name)
    if importlib.util.find_spec(f"mlkit.{name}") is not None:
        return importlib.import_module(f"mlkit.{name}")
    raise AttributeError(f"module 'mlkit' has no attribute {name!r}")
