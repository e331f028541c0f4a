"""Data in: shipped digit and text sets, generated toys, a learner's own CSV or NPZ file, their pre-processing,
and ``shifts``: the same images as the world might change them (moved, turned, noisy, thicker, fainter, inverted)."""

from mlkit.data import shifts, toys
from mlkit.data.dataset import (
    Dataset,
    Split,
    batches,
    load_dataset,
    make_dataset,
    with_preprocessor,
    with_tokenizer,
    with_train,
    with_train_size,
)
from mlkit.data.preprocess import Preprocessor
from mlkit.data.shipped import SHIPPED, read_shipped
from mlkit.data.text import Tokenizer

__all__ = [
    "SHIPPED",
    "Dataset",
    "Preprocessor",
    "Split",
    "Tokenizer",
    "batches",
    "load_dataset",
    "make_dataset",
    "read_shipped",
    "shifts",
    "toys",
    "with_preprocessor",
    "with_tokenizer",
    "with_train",
    "with_train_size",
]
