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
from mlkit.data.files import read_table
from mlkit.data.preprocess import Preprocessor
from mlkit.data.shipped import SHIPPED, read_shipped


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
    **generator_options,
) -> Dataset:
    """Load a shipped set (``"digits"``, ``"mnist5k"``), a generated one
    (``"moons"``, ``"circles"``, ``"spirals"``, ``"xor"``, ``"blobs"``,
    ``"regression_curve"``; options such as ``n=`` and ``noise=`` pass through),
    or your own ``.csv`` / ``.npz`` file, and split it.

    For a CSV file the label is the column named (or numbered) by ``label``, else
    the last column. An NPZ file holds arrays ``x`` and ``y``.
    """
    name = str(source)
    image_shape = None
    if name in SHIPPED:
        x, y = read_shipped(name)
        image_shape = SHIPPED[name][2]
    elif name in toys.GENERATORS:
        x, y = toys.GENERATORS[name](seed=seed, **generator_options)
    elif Path(name).suffix.lower() in (".csv", ".npz"):
        x, y = read_table(Path(name), label)
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
    """
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}; they must match.")
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
    parts = _split_indices(targets if task == "classification" else None, len(y), val_fraction, test_fraction, seed)
    preprocessor = Preprocessor.fit(x[parts[0]], preprocess, floor=0.1 if image_shape else 0.0)
    train, val, test = (Split(x[i], preprocessor(x[i]).astype(np.float32), targets[i]) for i in parts)
    return Dataset(name, train, val, test, preprocessor, labels, image_shape, task, seed)


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


def _split_indices(classes, n, val_fraction, test_fraction, seed):
    """Index arrays for train, val, test; each class keeps its share in every split."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(classes == c) for c in np.unique(classes)] if classes is not None else [np.arange(n)]
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for group in groups:
        group = rng.permutation(group)
        n_test = round(len(group) * test_fraction)
        n_val = round(len(group) * val_fraction)
        for part, chunk in zip(
            parts, (group[n_test + n_val :], group[n_test : n_test + n_val], group[:n_test]), strict=True
        ):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled mini-batches for one epoch, last one possibly smaller (for lessons; ``fit`` batches on device)."""
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x), batch_size):
        take = order[start : start + batch_size]
        yield x[take], y[take]
