"""Lesson 14, convolutions: the filter by hand in NumPy, what a ConvNet costs, its dashboard and its filters.

``conv2d`` and ``conv_matrix`` are the arithmetic ``flax.nnx.Conv`` does,
spelled out so the notebook can check one against the other; ``convnet_params``
and ``convnet_flops`` count :class:`mlkit.ConvNet` by formula. ``conv_lab`` is
a :class:`~mlkit.lessons.widgets.TrainingDashboard` over the ConvNet's filters,
depth and training images, with the first layer's learned filters beside the
curves. The self-checks of the lesson's exercises close the module.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes

from mlkit.data import Dataset, with_train_size
from mlkit.lessons.widgets import TrainingDashboard, accuracy_panel, int_slider, log_slider
from mlkit.models import ConvNet, count_params
from mlkit.train import TrainConfig

# Sobel's filters: each answers where brightness changes from left to right, or from top to bottom.
EDGES = {
    "left-to-right edges": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
    "top-to-bottom edges": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
}


def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Slide ``kernel`` (k x k, k odd) over ``image``: each output pixel is the sum of the kernel times
    the k x k patch around that pixel, the image padded with zeros so the output keeps its size.

    This is what a convolution layer computes (deep-learning libraries do not flip the kernel).
    """
    k = kernel.shape[0]
    padded = np.pad(np.asarray(image, np.float32), k // 2)
    h, w = image.shape
    out = np.zeros((h, w), np.float32)
    for a, b in itertools.product(range(k), range(k)):
        out += kernel[a, b] * padded[a : a + h, b : b + w]
    return out


def conv_matrix(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The same convolution as one dense ``(h*w, h*w)`` weight matrix: ``conv2d(x, k).ravel() == M @ x.ravel()``.

    Row ``i`` holds the kernel's numbers at the pixels around pixel ``i`` and zeros elsewhere: a dense
    layer whose weights are local and shared, the same k*k numbers in every row.
    """
    h, w = shape
    k = kernel.shape[0]
    matrix = np.zeros((h * w, h * w), np.float32)
    for i, j, a, b in itertools.product(range(h), range(w), range(k), range(k)):
        y, x = i + a - k // 2, j + b - k // 2
        if 0 <= y < h and 0 <= x < w:
            matrix[i * w + j, y * w + x] = kernel[a, b]
    return matrix


def convnet_params(image_shape: tuple[int, int], channels: Sequence[int], num_classes: int, k: int = 3) -> int:
    """Parameters of :class:`mlkit.ConvNet`: k*k*in*out + out per convolution, then the linear head."""
    sizes = [1, *channels]
    convs = sum(k * k * a * b + b for a, b in itertools.pairwise(sizes))
    h, w = image_shape[0] >> len(channels), image_shape[1] >> len(channels)  # each block halves the image
    return convs + h * w * sizes[-1] * num_classes + num_classes


def block_flops(image_shape: tuple[int, int], channels: Sequence[int], k: int = 3) -> list[int]:
    """FLOPs of each convolution of :class:`mlkit.ConvNet` for one image: 2*k*k*in*out per pixel (a multiply
    and an add per weight, at every pixel), each block seeing half the height and width of the one before."""
    (h, w), sizes, flops = image_shape, [1, *channels], []
    for a, b in itertools.pairwise(sizes):
        flops.append(2 * h * w * k * k * a * b)
        h, w = h // 2, w // 2
    return flops


def convnet_flops(image_shape: tuple[int, int], channels: Sequence[int], num_classes: int, k: int = 3) -> int:
    """FLOPs of one image through :class:`mlkit.ConvNet`: its convolutions (:func:`block_flops`), then the head.
    Borders are counted as if the filter never overhung the image, so XLA's count is a few percent lower."""
    h, w = image_shape[0] >> len(channels), image_shape[1] >> len(channels)
    return sum(block_flops(image_shape, channels, k)) + 2 * h * w * [1, *channels][-1] * num_classes


def first_filters(model: ConvNet) -> np.ndarray:
    """The first layer's learned filters, ``(filters, k, k)``: each looks at one patch of the grey image."""
    kernel = np.asarray(model.convs[0].kernel[...])  # (k, k, 1, filters)
    return np.moveaxis(kernel[:, :, 0, :], -1, 0)


def show_filters(filters: np.ndarray, ax: Axes, title: str = "first-layer filters") -> None:
    """Draw ``(n, k, k)`` filters as one grid of tiles (red positive, blue negative, each tile scaled alone)."""
    n, k = len(filters), filters.shape[1]
    columns = int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    grid = np.full((rows * (k + 1) - 1, columns * (k + 1) - 1), np.nan)
    for i, f in enumerate(filters):
        r, c = divmod(i, columns)
        grid[r * (k + 1) : r * (k + 1) + k, c * (k + 1) : c * (k + 1) + k] = f / (np.abs(f).max() or 1.0)
    ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title(title)
    ax.axis("off")


def conv_lab(data: Dataset, seed: int = 0, **kwargs) -> TrainingDashboard:
    """Lesson 14: filters in the first block (each block doubles them), blocks (depth), training images,
    epochs and learning rate of a ConvNet; validation accuracy and the learned first-layer filters."""
    if data.image_shape is None:
        raise ValueError(f"conv_lab needs an image set (e.g. mnist5k); {data.name!r} has no image shape.")
    shape = data.image_shape
    controls = {
        "filters": int_slider("filters", 8, 2, 32, 2),
        "blocks": int_slider("blocks (depth)", 2, 1, 3),
        "train_size": int_slider("training images", 1000, 200, len(data.train), 100),
        "epochs": int_slider("epochs", 3, 1, 10),
        "learning_rate": log_slider("learning rate", 3e-3, 1e-4, 1e-1),
    }

    def channels(v: dict) -> tuple[int, ...]:
        return tuple(v["filters"] * 2**i for i in range(v["blocks"]))

    def filters_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
        if isinstance(dashboard.model, ConvNet):
            show_filters(first_filters(dashboard.model), ax)

    def describe(dashboard: TrainingDashboard) -> str:
        v, history, model = dashboard.values, dashboard.history, dashboard.model
        if history is None or model is None or not history.epochs:
            return ""
        flops = convnet_flops(shape, channels(v), data.num_classes)
        return (
            f"channels {channels(v)}: {count_params(model):,} parameters · {flops / 1e6:.2f} MFLOPs per image · "
            f"val acc {history.val_acc[-1]:.1%} after {history.epochs} epoch{'s' * (history.epochs != 1)} "
            f"on {v['train_size']} images"
        )

    kwargs.setdefault("title", "ConvNet: filters, depth and data")
    return TrainingDashboard(
        lambda v: with_train_size(data, v["train_size"], seed=seed),
        lambda d, v: ConvNet(shape, d.num_classes, channels=channels(v), seed=seed),
        TrainConfig(seed=seed),
        controls,
        (accuracy_panel, filters_panel),
        data_keys=("train_size",),
        describe=describe,
        **kwargs,
    )


# ---------------------------------------------------------------- self-checks of lesson 14's exercises
