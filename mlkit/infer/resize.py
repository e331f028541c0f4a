"""Images of another size in: resizing as part of a frozen predictor's input processing.

A model trained on 28x28 images takes 28x28 images. :func:`with_resize` makes a
predictor for images of any other height and width: their pixels are rescaled,
resized with the weights of ``jax.image.resize`` and placed where the training
images keep their ink, all inside the frozen function. So the step is compiled with the
model and a saved artifact performs it too; nothing outside it has to know.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mlkit.infer.predictor import Predictor

METHODS = ("linear", "cubic", "lanczos3", "lanczos5", "nearest")


def resize_matrix(n: int, size: int, frame: int, method: str = "linear") -> np.ndarray:
    """The ``(frame, n)`` matrix that resizes ``n`` pixels to ``size`` and centres them in ``frame`` (zeros around).

    Resizing is linear in the pixels and separable (rows, then columns), so resizing an image is
    ``M_rows @ image @ M_cols.T``: the weights are those of ``jax.image.resize`` (antialiased when
    shrinking), found by resizing an identity matrix. A matrix product runs with any batch size,
    inside ``jax.export`` (symbolic batch) and ONNX alike.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown resize method {method!r}; expected one of {list(METHODS)}.")
    weights = np.asarray(jax.image.resize(jnp.eye(n, dtype=jnp.float32), (size, n), method, antialias=True))
    top = (frame - size) // 2
    matrix = np.zeros((frame, n), np.float32)
    matrix[top : top + size] = weights
    return matrix


def resizer(
    from_shape: Sequence[int],
    to_shape: Sequence[int],
    *,
    box: Sequence[int] | None = None,
    scale: float = 1.0,
    method: str = "linear",
) -> Callable[[jax.Array], jax.Array]:
    """A function from rows of ``from_shape`` grey images to rows of ``to_shape`` ones (NumPy or JAX, in ``jit`` too).

    Each image is multiplied by ``scale`` (to the training images' pixel range), resized to ``box``
    (default: the whole ``to_shape``) and centred on a blank (zero) image of ``to_shape``.
    """
    (h, w), (height, width) = _shape(from_shape, "from_shape"), _shape(to_shape, "to_shape")
    bh, bw = (height, width) if box is None else _shape(box, "box")
    if bh > height or bw > width:
        raise ValueError(f"box={(bh, bw)} does not fit inside the {(height, width)} image; use a box at most that.")
    rows, cols = resize_matrix(h, bh, height, method) * scale, resize_matrix(w, bw, width, method)

    def resize(x: jax.Array) -> jax.Array:
        images = jnp.asarray(x, jnp.float32).reshape(-1, h, w)
        return jnp.einsum("ph,nhw,qw->npq", rows, images, cols).reshape(-1, height * width)

    return resize


def with_resize(
    predictor: Predictor,
    input_shape: Sequence[int],
    *,
    to: Sequence[int],
    box: Sequence[int] | None = None,
    scale: float = 1.0,
    method: str = "linear",
) -> Predictor:
    """A predictor of rows of ``input_shape`` images, resized inside the frozen function for ``predictor``,
    which takes rows of ``to`` images (``data.image_shape``).

    ``box``, ``scale`` and ``method`` are those of :func:`resizer`. E.g. 8x8 digits (ink 0-16) for an
    MNIST model: ``with_resize(p, (8, 8), to=(28, 28), box=(20, 20), scale=255 / 16)``, since MNIST draws
    each digit in the middle 20x20 pixels of its 28x28 image, with ink 0-255.
    """
    (h, w), (height, width) = _shape(input_shape, "input_shape"), _shape(to, "to")
    if height * width != predictor.num_features:
        raise ValueError(
            f"to={(height, width)} makes rows of {height * width} pixels but the predictor takes "
            f"{predictor.num_features}; pass the image shape it was trained on (data.image_shape)."
        )
    resize, inner = resizer((h, w), (height, width), box=box, scale=scale, method=method), predictor.fn
    return Predictor(
        lambda x: inner(resize(x)),
        h * w,
        predictor.labels,
        task=predictor.task,
        buckets=predictor.buckets,
        params=predictor.params,
    )


def _shape(shape: Sequence[int], name: str) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(f"{name} should be (height, width), two positive whole numbers; got {shape}.")
    return shape[0], shape[1]
