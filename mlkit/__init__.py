"""mlkit: learn how a network is trained, then how it is used.

The course in order, and the packages that hold it:

- :mod:`mlkit.data`: data in, split, pre-processed (``load_dataset``), and shifted as the world shifts (``shifts``)
- :mod:`mlkit.models`: small flax.nnx models (``MLP``) and their inference-mode view
- :mod:`mlkit.train`: training (``TrainConfig``, ``fit``, ``sweep``, checkpoints, ``parallel``)
- :mod:`mlkit.infer`: inference (``freeze`` → ``Predictor``, ``save_predictor`` / ``load_predictor``,
  ``compress``)
- :mod:`mlkit.bench`: timing done right
- :mod:`mlkit.lessons`: the notebooks' dashboards and figures (not imported here)

Importing mlkit changes no global JAX setting.
"""

from importlib.metadata import version as _version

from mlkit import bench, data, infer, models, train
from mlkit.data import Dataset, Preprocessor, Split, load_dataset, make_dataset
from mlkit.infer import Predictor, freeze, load_predictor, save_predictor, verify_artifact
from mlkit.models import MLP, ConvNet, EmbeddingBag, LogisticRegression, count_params, eval_view
from mlkit.train import (
    Checkpoint,
    History,
    SweepResult,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    sweep,
)

__version__ = _version("mlkit-course")  # the distribution's name (the import name is mlkit)
del _version

__all__ = [
    "MLP",
    "Checkpoint",
    "ConvNet",
    "Dataset",
    "EmbeddingBag",
    "History",
    "LogisticRegression",
    "Predictor",
    "Preprocessor",
    "Split",
    "SweepResult",
    "TrainConfig",
    "bench",
    "count_params",
    "data",
    "eval_view",
    "evaluate",
    "fit",
    "freeze",
    "infer",
    "load_checkpoint",
    "load_dataset",
    "load_predictor",
    "make_dataset",
    "models",
    "save_checkpoint",
    "save_predictor",
    "sweep",
    "train",
    "verify_artifact",
]
