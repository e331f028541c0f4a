"""Data in: shipped digit and text sets, generated toys, a learner's own CSV or NPZ file, and their pre-processing."""

from mlkit.data import toys
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
    "toys",
    "with_preprocessor",
    "with_tokenizer",
    "with_train",
    "with_train_size",
]
