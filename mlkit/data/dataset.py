"""Every source of data ends as a :class:`Dataset`: shipped digits, generated toys, a learner's own file.

A :class:`Dataset` is a stratified train / validation / test split plus a
:class:`Preprocessor` fitted on the training split only, so no statistic of the
validation or test data leaks into training.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlkit.data import toys
from mlkit.data.files import check_labels, check_layout, read_table
from mlkit.data.preprocess import Preprocessor
from mlkit.data.shipped import SHIPPED, read_shipped
from mlkit.data.text import Tokenizer


@dataclass(frozen=True)
class Split:
    """One part of a data set: raw inputs, pre-processed inputs, targets."""

    raw_x: np.ndarray  # (n, features) float32, as the data came
    x: np.ndarray  # (n, features) float32, after the Preprocessor
    y: np.ndarray  # (n,) int32 class ids, or float32 targets for regression

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits with the pre-processing fitted on train."""

    name: str
    train: Split
    val: Split
    test: Split
    preprocessor: Preprocessor
    labels: tuple = ()  # readable class names; empty for regression
    image_shape: tuple[int, int] | None = None  # (height, width) when features are pixels
    task: str = "classification"
    seed: int = field(default=0, repr=False)
    tokenizer: Tokenizer | None = field(default=None, repr=False)  # a text set's, fitted on train; raw_x: the texts

    @property
    def num_features(self) -> int:
        return self.train.x.shape[1]

    @property
    def num_classes(self) -> int:
        """Outputs a model needs: the number of classes, or 1 for regression."""
        return len(self.labels) if self.task == "classification" else 1


def load_dataset(
    source: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    preprocess: str = "standardize",
    label: str | int | None = None,
    max_bytes: int | None = None,
    **generator_options,
) -> Dataset:
    """Load a shipped set (``"digits"``, ``"mnist5k"``, the texts ``"reviews"``), a generated one
    (``"moons"``, ``"circles"``, ``"spirals"``, ``"xor"``, ``"blobs"``,
    ``"regression_curve"``; options such as ``n=`` and ``noise=`` pass through),
    or your own ``.csv`` / ``.npz`` file, and split it.

    For a CSV file the label is the column named (or numbered from 0) by ``label``,
    else the last column; a column of numbers with a fraction in any row is a
    regression target, other labels (whole numbers, text) are classes. An NPZ file
    holds arrays ``x`` and ``y``. A file larger than ``max_bytes`` (default
    ``mlkit.data.files.MAX_BYTES``, 1 GiB, or the environment variable
    ``MLKIT_MAX_DATA_BYTES``) is refused before it is read.
    """
    name = str(source)
    image_shape = None
    is_file = Path(name).suffix.lower() in (".csv", ".npz")
    if not is_file and (label is not None or max_bytes is not None):
        raise ValueError(f"label= and max_bytes= apply to your own .csv or .npz file, not to {name!r}.")
    if name in SHIPPED:
        x, y = read_shipped(name)
        image_shape = SHIPPED[name][2]
    elif name in toys.GENERATORS:
        x, y = toys.GENERATORS[name](seed=seed, **generator_options)
    elif is_file:
        x, y = read_table(Path(name), label, max_bytes=max_bytes)
        name = Path(name).stem
    else:
        known = sorted([*SHIPPED, *toys.GENERATORS])
        raise ValueError(f"Unknown data set {name!r}. Expected one of {known}, or a path ending in .csv or .npz.")
    if generator_options and name not in toys.GENERATORS:
        raise TypeError(f"Options {sorted(generator_options)} only apply to generated data sets.")
    return make_dataset(
        x,
        y,
        name=name,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        preprocess=preprocess,
        image_shape=image_shape,
    )


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    name: str = "arrays",
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    preprocess: str = "standardize",
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """Split arrays into train / val / test (stratified by class) and fit pre-processing on train.

    Integer or string ``y`` makes a classification set; non-integer floats a regression set.
    Every class (for regression, the whole set) must have an example in every split. Strings in ``x``
    (one text per row) make a text set, tokenised by a :class:`Tokenizer` fitted on the training texts
    (token ids are not standardised, whatever ``preprocess`` says).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind == "U" and x.ndim == 1:  # split the row numbers, then fit the vocabulary on train only
        rows = make_dataset(
            np.arange(len(x))[:, None],
            y,
            name=name,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            preprocess="none",
        )
        train, val, test = (
            Split(t, t, s.y) for s in (rows.train, rows.val, rows.test) for t in [x[s.raw_x[:, 0].astype(int)]]
        )
        return with_tokenizer(dataclasses.replace(rows, train=train, val=val, test=test), Tokenizer.fit(train.raw_x))
    check_layout(x.shape, x.dtype, y.shape, y.dtype, f"data set {name!r}")
    check_labels(y, f"data set {name!r}")
    x = _as_float32(x, name).reshape(len(x), -1)
    if not 0 <= val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"Need 0 <= val_fraction, 0 < test_fraction and a sum below 1; got {val_fraction} and {test_fraction}."
        )
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        task, labels, targets = "regression", (), y.astype(np.float32)
    else:
        task = "classification"
        classes, ids = np.unique(y, return_inverse=True)
        labels = tuple(c.item() for c in classes)
        targets = ids.astype(np.int32)
        if len(labels) < 2:
            raise ValueError(
                f"Data set {name!r} holds one class ({classes[0].item()!r}); a classifier needs examples of at least "
                f"two. Check the labels (for a CSV file, that label= names the label column)."
            )
    counts = np.bincount(targets) if task == "classification" else [len(y)]
    _check_split_sizes(name, labels, counts, val_fraction, test_fraction)
    parts = _split_indices(targets if task == "classification" else None, len(y), val_fraction, test_fraction, seed)
    preprocessor = Preprocessor.fit(x[parts[0]], preprocess, floor=0.1 if image_shape else 0.0)
    train, val, test = (Split(x[i], preprocessor(x[i]).astype(np.float32), targets[i]) for i in parts)
    return Dataset(name, train, val, test, preprocessor, labels, image_shape, task, seed)


def _as_float32(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as float32, refusing finite values beyond float32's range (they would become infinite)."""
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32, copy=False)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        beyond = ~np.isfinite(x32) & np.isfinite(x)
        if beyond.any():
            index = tuple(int(i) for i in np.argwhere(beyond)[0])
            raise ValueError(
                f"Data set {name!r}: x[{', '.join(map(str, index))}] = {x[index].item():.4g} is beyond the range of "
                f"float32 (±{np.finfo(np.float32).max:.2g}), the type training uses; fix the value or rescale the "
                f"feature (divide the column by a power of ten)."
            )
    return x32


def with_train_size(data: Dataset, n: int, seed: int = 0) -> Dataset:
    """The same validation and test splits with only ``n`` (stratified) training examples.

    The pre-processing is fitted again on the smaller training split, as it would be
    if that were all the data there was.
    """
    total = len(data.train)
    if not 1 <= n <= total:
        raise ValueError(f"n must be between 1 and the training split's size {total}, got {n}.")
    rng = np.random.default_rng(seed)
    if data.task == "classification":
        classes, counts = np.unique(data.train.y, return_counts=True)
        quota = counts * n / total
        take = np.floor(quota).astype(int)
        take[np.argsort(take - quota, kind="stable")[: n - take.sum()]] += 1  # largest remainders round up
        picks = (rng.permutation(np.flatnonzero(data.train.y == c))[:k] for c, k in zip(classes, take, strict=True))
        keep = np.concatenate(list(picks))
        keep = rng.permutation(keep)
    else:
        keep = rng.permutation(total)[:n]
    return with_train(data, data.train.raw_x[keep], data.train.y[keep])


def with_train(data: Dataset, raw_x: np.ndarray, y: np.ndarray) -> Dataset:
    """The same validation and test splits with a new training split (e.g. augmented);
    the pre-processing is fitted again on it."""
    raw_x = np.asarray(raw_x, np.float32).reshape(len(raw_x), -1)
    if raw_x.shape[1] != data.num_features or len(raw_x) != len(y):
        raise ValueError(f"Expected {len(y)} rows of {data.num_features} features, got shape {raw_x.shape}.")
    pre = Preprocessor.fit(raw_x, data.preprocessor.kind, data.preprocessor.floor)
    train, val, test = (
        Split(s.raw_x, pre(s.raw_x).astype(np.float32), s.y)
        for s in (Split(raw_x, raw_x, np.asarray(y)), data.val, data.test)
    )
    return dataclasses.replace(data, train=train, val=val, test=test, preprocessor=pre)


def with_preprocessor(data: Dataset, preprocessor: Preprocessor) -> Dataset:
    """``data`` with every split's ``x`` re-computed by ``preprocessor`` (e.g. the one a model was trained with)."""
    splits = {
        name: dataclasses.replace(s, x=np.asarray(preprocessor(s.raw_x), np.float32))
        for name in ("train", "val", "test")
        for s in [getattr(data, name)]
    }
    return dataclasses.replace(data, preprocessor=preprocessor, **splits)


def with_tokenizer(data: Dataset, tokenizer: Tokenizer) -> Dataset:
    """A text set with every split's ``x`` re-encoded by ``tokenizer`` from its texts (``raw_x``).

    Fit the tokenizer on the training texts only: ``Tokenizer.fit(data.train.raw_x, max_words=...)``.
    """
    splits = {
        part: dataclasses.replace(s, x=tokenizer.encode(s.raw_x).astype(np.float32))
        for part in ("train", "val", "test")
        for s in [getattr(data, part)]
    }
    preprocessor = Preprocessor.fit(splits["train"].x, "none")  # token ids are not standardised
    return dataclasses.replace(data, preprocessor=preprocessor, tokenizer=tokenizer, **splits)


def _split_indices(classes, n, val_fraction, test_fraction, seed):
    """Index arrays for train, val, test; each class keeps its share in every split."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(classes == c) for c in np.unique(classes)] if classes is not None else [np.arange(n)]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for group in groups:
        group = rng.permutation(group)
        _, n_val, n_test = _split_sizes(len(group), val_fraction, test_fraction)
        for part, chunk in zip(
            parts, (group[n_test + n_val :], group[n_test : n_test + n_val], group[:n_test]), strict=True
        ):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Train, validation and test counts for a group (a class, or the whole set) of ``n`` examples."""
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return n - n_test - n_val, n_val, n_test


def _check_split_sizes(name: str, labels: tuple, counts, val_fraction: float, test_fraction: float) -> None:
    """Refuse sizes that would leave a split without some class (or, for regression, empty)."""

    def covered(n: int) -> bool:
        n_train, n_val, n_test = _split_sizes(n, val_fraction, test_fraction)
        return n_train > 0 and n_test > 0 and (n_val > 0 or val_fraction == 0)

    short = [i for i, n in enumerate(counts) if not covered(n)]
    if not short:
        return
    need = max(int(0.5 / test_fraction), int(0.5 / val_fraction) if val_fraction else 0)
    while not covered(need):
        need += 1
    splits = "training, validation and test" if val_fraction else "training and test"
    fractions = f"val_fraction={val_fraction} and test_fraction={test_fraction}"
    if not labels:
        raise ValueError(
            f"Data set {name!r} has {counts[0]} examples, too few for {splits} splits with {fractions}: "
            f"it needs at least {need}. Use a larger data set."
        )
    shown = ", ".join(f"{labels[i]!r} ({counts[i]} example{'' if counts[i] == 1 else 's'})" for i in short[:5])
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    raise ValueError(
        f"Data set {name!r}: {len(short)} of {len(labels)} classes are too small to have an example in each of "
        f"the {splits} splits: {shown}{more}. With {fractions} a class needs at least {need} examples. "
        f"Use a larger file, or fewer classes (merge or drop the rare ones)."
    )


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled mini-batches for one epoch, last one possibly smaller (for lessons; ``fit`` batches on device)."""
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        take = order[start : start + batch_size]
        yield x[take], y[take]
