"""mlkit: learn how a network is trained, then how it is used.

The course in order: data → model → training → inference.
"""

from mlkit.data import Dataset, Preprocessor, Split, batches, load_dataset, make_dataset, with_train_size
from mlkit.models import MLP, ConvNet, LogisticRegression, count_params
from mlkit.train import History, TrainConfig, apply, evaluate, fit, make_optimizer
from mlkit.infer import Predictor, freeze
from mlkit.sweep import SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    # data
    "Dataset", "Preprocessor", "Split", "batches", "load_dataset", "make_dataset", "with_train_size",
    # models
    "MLP", "ConvNet", "LogisticRegression", "count_params",
    # training
    "History", "TrainConfig", "apply", "evaluate", "fit", "make_optimizer",
    # inference
    "Predictor", "freeze",
    # many runs at once
    "SweepResult", "sweep",
]
