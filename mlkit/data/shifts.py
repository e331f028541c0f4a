"""Shifted images: the digits as the world might change them after training (lessons 06, 11 and 13).

Each shift below takes raw image rows ``(n, height * width)`` and a severity in
[0, 1] (0 changes nothing, 1 is the strongest) and returns rows of the same
shape and dtype, clipped to the data's value range (0-16 for the digits).
:func:`shift` applies one to a whole Split or Dataset and re-computes ``x`` with
the ORIGINAL pre-processing, which is how a deployed model sees new data: its
statistics were fixed at training time; :func:`finetune_data` adds a small
labelled sample of the shifted digits to fine-tune on. Lesson 06 uses
:func:`translate` and :func:`rotate` to augment the training set, lesson 11
measures what the shifts do to a frozen model, and lesson 13 sends them to a
server whose drift watch (:mod:`mlkit.serve.drift`) notices. NumPy only; every
random choice takes a seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import overload

import numpy as np

from mlkit.data.dataset import Dataset, Split, with_preprocessor, with_train_size
from mlkit.data.preprocess import Preprocessor

MAX_SHIFT = 0.25  # translation at severity 1, as a fraction of the image side
MAX_DEGREES = 45.0  # rotation at severity 1
NOISE = 0.4  # noise standard deviation at severity 1, as a fraction of the value range
FADE = 0.8  # fraction of the ink that fades away at severity 1


def translate(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Each image moved by ``severity * MAX_SHIFT`` of its side in a random direction (bilinear, blank edges)."""

    def warp(images, rows, cols, rng):
        angle = rng.uniform(0, 2 * np.pi, len(images))[:, None, None]
        distance = severity * MAX_SHIFT * min(image_shape)
        return rows - distance * np.sin(angle), cols - distance * np.cos(angle)

    return _geometric(x, image_shape, severity, seed, value_range, warp)


def rotate(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Each image turned about its centre by ``severity * MAX_DEGREES``, clockwise or not at random."""

    def warp(images, rows, cols, rng):
        theta = np.radians(severity * MAX_DEGREES) * rng.choice([-1.0, 1.0], len(images))[:, None, None]
        cr, cc = (image_shape[0] - 1) / 2, (image_shape[1] - 1) / 2
        r, c = rows - cr, cols - cc  # output pixel → where it comes from: rotate back by -theta
        return cr + np.cos(theta) * r + np.sin(theta) * c, cc - np.sin(theta) * r + np.cos(theta) * c

    return _geometric(x, image_shape, severity, seed, value_range, warp)


def noise(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Gaussian noise with a standard deviation of ``severity * NOISE`` of the value range on every pixel."""
    lo, hi = _range(x, value_range)
    sigma = _check(x, image_shape, severity) * NOISE * (hi - lo)
    return _out(x, x + np.random.default_rng(seed).normal(0.0, 1.0, x.shape) * sigma, lo, hi, sigma)


def thicken(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Thicker strokes: a blend, by ``severity``, towards a max filter one pixel wide (two for 28x28)."""
    lo, hi = _range(x, value_range)
    severity = _check(x, image_shape, severity)
    radius = max(1, round(min(image_shape) / 14))
    images = x.reshape(len(x), *image_shape).astype(np.float64)
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)), constant_values=lo)
    h, w = image_shape
    grown = np.max(
        [padded[:, i : i + h, j : j + w] for i in range(2 * radius + 1) for j in range(2 * radius + 1)], axis=0
    )
    return _out(x, (images + severity * (grown - images)).reshape(x.shape), lo, hi, severity)


def fade(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Fainter strokes: the ink moves towards the background by ``severity * FADE`` of its strength."""
    lo, hi = _range(x, value_range)
    severity = _check(x, image_shape, severity)
    return _out(x, lo + (x - lo) * (1.0 - FADE * severity), lo, hi, severity)


def invert(
    x: np.ndarray,
    image_shape: tuple[int, int],
    severity: float,
    *,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Inverted shade: a blend, by ``severity``, towards light strokes on a dark ground (``lo + hi - x``)."""
    lo, hi = _range(x, value_range)
    severity = _check(x, image_shape, severity)
    return _out(x, x + severity * ((lo + hi - x) - x), lo, hi, severity)


KINDS: dict[str, Callable[..., np.ndarray]] = {
    "translate": translate,
    "rotate": rotate,
    "noise": noise,
    "thicken": thicken,
    "fade": fade,
    "invert": invert,
}


@overload
def shift(
    data: Dataset,
    kind: str,
    severity: float = ...,
    *,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
    preprocessor: Preprocessor | None = None,
    value_range: tuple[float, float] | None = None,
) -> Dataset: ...


@overload
def shift(
    data: Split,
    kind: str,
    severity: float = ...,
    *,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
    preprocessor: Preprocessor | None = None,
    value_range: tuple[float, float] | None = None,
) -> Split: ...


def shift(
    data: Dataset | Split,
    kind: str,
    severity: float = 1.0,
    *,
    seed: int = 0,
    image_shape: tuple[int, int] | None = None,
    preprocessor: Preprocessor | None = None,
    value_range: tuple[float, float] | None = None,
) -> Dataset | Split:
    """A copy of ``data`` with ``raw_x`` shifted by ``kind`` and ``x`` re-computed by the original pre-processing.

    A Dataset carries its image shape, pre-processing and value range (taken from
    its training split); a Split needs ``image_shape`` and ``preprocessor``. Every
    split of a Dataset is shifted, with its own seed.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown shift {kind!r}; expected one of {sorted(KINDS)}.")
    if isinstance(data, Dataset):
        if data.image_shape is None and image_shape is None:
            raise ValueError(f"shift works on images; {data.name!r} has no image shape. Pass image_shape=(h, w).")
        value_range = value_range or (float(data.train.raw_x.min()), float(data.train.raw_x.max()))
        shape, pre = image_shape or data.image_shape, preprocessor or data.preprocessor
        train, val, test = (
            _shift_split(split, kind, severity, seed + i, shape, pre, value_range)
            for i, split in enumerate((data.train, data.val, data.test))
        )
        return dataclasses.replace(data, name=f"{data.name} ({kind} {severity:g})", train=train, val=val, test=test)
    return _shift_split(data, kind, severity, seed, image_shape, preprocessor, value_range)


def _shift_split(
    split: Split,
    kind: str,
    severity: float,
    seed: int,
    image_shape: tuple[int, int] | None,
    preprocessor: Preprocessor | None,
    value_range: tuple[float, float] | None,
) -> Split:
    if image_shape is None or preprocessor is None:
        raise ValueError(
            "shift of a Split needs image_shape=(h, w) and preprocessor= (the one the model was "
            "trained with); or pass the whole Dataset, which carries both."
        )
    raw = KINDS[kind](split.raw_x, image_shape, severity, seed=seed, value_range=value_range)
    return dataclasses.replace(split, raw_x=raw, x=np.asarray(preprocessor(raw), np.float32))


def finetune_data(data: Dataset, kind: str, severity: float, n: int, *, seed: int = 0) -> Dataset:
    """Shifted digits for fine-tuning: ``n`` labelled training examples, shifted validation and test splits,
    all pre-processed with ``data``'s ORIGINAL statistics, which the model's weights expect."""
    shifted = shift(data, kind, severity, seed=seed)
    return with_preprocessor(with_train_size(shifted, n, seed=seed), data.preprocessor)


def _check(x: np.ndarray, image_shape: tuple[int, int], severity: float) -> float:
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1] (0: unchanged, 1: strongest), got {severity}.")
    if x.ndim != 2 or x.shape[1] != image_shape[0] * image_shape[1]:
        raise ValueError(
            f"Expected rows of {image_shape[0]}x{image_shape[1]} = {image_shape[0] * image_shape[1]} "
            f"pixels, shape (n, {image_shape[0] * image_shape[1]}); got shape {x.shape}."
        )
    return float(severity)


def _range(x: np.ndarray, value_range: tuple[float, float] | None) -> tuple[float, float]:
    """The values pixels may take: given, or the smallest and largest in ``x``."""
    if value_range is not None:
        return float(value_range[0]), float(value_range[1])
    return (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)


def _out(x: np.ndarray, shifted: np.ndarray, lo: float, hi: float, severity: float) -> np.ndarray:
    """``shifted`` clipped to [lo, hi] in ``x``'s dtype (rounded for integer pixels); severity 0 is ``x`` itself."""
    if severity == 0:
        return x.copy()
    shifted = np.clip(shifted, lo, hi)
    return (np.round(shifted) if x.dtype.kind in "iu" else shifted).astype(x.dtype)


def _geometric(x, image_shape, severity, seed, value_range, warp) -> np.ndarray:
    """Resample each image at the source coordinates ``warp`` gives, bilinearly, blank outside."""
    lo, hi = _range(x, value_range)
    severity = _check(x, image_shape, severity)
    h, w = image_shape
    images = x.reshape(len(x), h, w).astype(np.float64)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    src_r, src_c = warp(images, rows[None], cols[None], np.random.default_rng(seed))
    r0, c0 = np.floor(src_r).astype(int), np.floor(src_c).astype(int)
    fr, fc = src_r - r0, src_c - c0
    which = np.arange(len(x))[:, None, None]
    out = np.zeros_like(images)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            r, c = r0 + dr, c0 + dc
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            out += wr * wc * np.where(inside, images[which, r.clip(0, h - 1), c.clip(0, w - 1)], lo)
    return _out(x, out.reshape(x.shape), lo, hi, severity)
