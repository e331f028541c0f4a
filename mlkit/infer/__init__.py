"""Inference: apply the frozen parameters to new data, fast.

``freeze`` turns a trained model into a :class:`Predictor`; ``save_predictor`` /
``load_predictor`` write and read the deployable artifact; ``postprocess``,
``compress`` and ``drift`` are what happens to a model after training.
"""

from mlkit.infer import compress, drift, postprocess
from mlkit.infer.artifact import load_predictor, read_metadata, save_predictor
from mlkit.infer.predictor import BUCKETS, Predictor, accuracy, freeze

__all__ = [
    "BUCKETS",
    "Predictor",
    "accuracy",
    "compress",
    "drift",
    "freeze",
    "load_predictor",
    "postprocess",
    "read_metadata",
    "save_predictor",
]
