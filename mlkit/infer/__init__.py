"""Inference: apply the frozen parameters to new data, fast.

``freeze`` turns a trained model into a :class:`Predictor`; ``save_predictor`` /
``load_predictor`` write and read the deployable artifact, and ``verify_artifact``
runs its program in a child process first (see :mod:`mlkit.infer.verify`); ``postprocess``
and ``compress`` are what happens to a model's answers and weights after training.
"""

from mlkit.infer import compress, postprocess
from mlkit.infer.artifact import load_predictor, read_metadata, save_predictor, verify_artifact
from mlkit.infer.predictor import BUCKETS, Predictor, accuracy, freeze

__all__ = [
    "BUCKETS",
    "Predictor",
    "accuracy",
    "compress",
    "freeze",
    "load_predictor",
    "postprocess",
    "read_metadata",
    "save_predictor",
    "verify_artifact",
]
