"""The self-checks of lesson 14 (Convolutions: small shared filters for real images), in exercise order."""

from __future__ import annotations

from flax import nnx

from mlkit.data import Dataset
from mlkit.infer import Predictor, accuracy
from mlkit.infer.resize import with_resize
from mlkit.lessons.check.verdict import choice, close_to, judge
from mlkit.lessons.vision import block_flops
from mlkit.models import count_params


def colour_conv_params(answer: int | None, filters: int = 8, k: int = 5, channels: int = 3) -> bool:
    """Exercise 14.1: the parameters of a convolution with ``filters`` filters of k x k over a colour image."""
    n = count_params(nnx.Conv(channels, filters, (k, k), rngs=nnx.Rngs(0)))
    return judge(
        answer,
        lambda a: int(a) == n,
        f"a filter spans all {channels} channels: {k}x{k} weights per channel, plus one bias; then {filters} filters.",
        f"{n:,} parameters, whatever the image's size, because every filter is shared across all its pixels. For "
        f"comparison, a dense layer doing the same job on a small colour photo, 32x32 pixels as in CIFAR-10, "
        f"with {filters} output maps of 32x32, would hold {32 * 32 * channels * 32 * 32 * filters:,} weights.",
    )


def costlier_block(answer: str | None, image_shape: tuple[int, int] = (28, 28), channels=(8, 16)) -> bool:
    """Exercise 14.2: which block of ``ConvNet(channels=channels)`` costs more FLOPs per image, "first" or "second"."""
    first, second = block_flops(image_shape, channels)
    return judge(
        answer,
        choice("first" if first > second else "second"),
        "per pixel a convolution costs 2·9·in·out; the first block sees 28x28 pixels and 1 channel in, the second "
        "14x14 pixels and 8 channels in.",
        f"About {first:,} FLOPs for the first block, {second:,} for the second: a quarter of the pixels, but eight "
        "input channels and twice the filters.",
    )


def unscaled_accuracy(answer: float | None, predictor: Predictor, digits: Dataset) -> bool:
    """Exercise 14.3: the test accuracy on the 8x8 digits of the boxed predictor built without ``scale``."""
    unscaled = accuracy(with_resize(predictor, (8, 8), to=(28, 28), box=(20, 20)), digits.test)
    return judge(
        answer,
        close_to(unscaled, 0.005),
        "with_resize(conv_predictor, (8, 8), to=(28, 28), box=(20, 20)), then accuracy(..., digits.test).",
        f"{unscaled:.0%}: the darkest ink is 16 where the model learned 255, so after MNIST's standardisation every "
        "stroke looks like faint smudge. Input processing is a contract on values as well as shapes.",
    )
