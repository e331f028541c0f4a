"""mlkit.data.shifts: each shift does what it says, keeps shape, dtype and range, and is seeded."""

import numpy as np
import pytest

import mlkit
from mlkit.data import shifts

SHAPE = (8, 8)


@pytest.mark.parametrize("kind", sorted(shifts.KINDS))
def test_severity_zero_is_the_identity(kind, digits):
    x = digits.test.raw_x
    out = shifts.KINDS[kind](x, SHAPE, 0.0, seed=3)
    np.testing.assert_array_equal(out, x)
    assert out is not x


@pytest.mark.parametrize("kind", sorted(shifts.KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_shape_dtype_and_range_are_kept(kind, dtype, digits):
    x = digits.test.raw_x[:50].astype(dtype)
    for severity in (0.5, 1.0):
        out = shifts.KINDS[kind](x, SHAPE, severity, seed=0, value_range=(0, 16))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 16
        assert not np.array_equal(out, x)


@pytest.mark.parametrize("kind", ["translate", "rotate", "noise"])
def test_random_shifts_are_reproducible_by_seed(kind, digits):
    x = digits.test.raw_x[:50]
    np.testing.assert_array_equal(shifts.KINDS[kind](x, SHAPE, 0.7, seed=1), shifts.KINDS[kind](x, SHAPE, 0.7, seed=1))
    assert not np.array_equal(shifts.KINDS[kind](x, SHAPE, 0.7, seed=1), shifts.KINDS[kind](x, SHAPE, 0.7, seed=2))


def test_shifts_do_what_they_say():
    image = np.zeros((1, 64), np.float32)
    image[0, 3 * 8 + 3] = 16.0  # one bright pixel at row 3, column 3
    assert shifts.thicken(image, SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)[2:5, 2:5].min() == 16.0
    np.testing.assert_allclose(shifts.fade(image, SHAPE, 1.0, value_range=(0, 16)).max(), 16.0 * (1 - shifts.FADE))
    assert shifts.invert(image, SHAPE, 1.0, value_range=(0, 16)).sum() == 16.0 * 63
    moved = shifts.translate(image, SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)
    rows, cols = np.nonzero(moved)
    centre = np.array([np.average(rows, weights=moved[rows, cols]), np.average(cols, weights=moved[rows, cols])])
    np.testing.assert_allclose(np.linalg.norm(centre - 3), shifts.MAX_SHIFT * 8, atol=1e-6)  # moved 2 pixels
    turned = shifts.rotate(np.full((1, 64), 16.0, np.float32), SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)
    assert turned[0, 0] == 0 and turned[3, 3] == 16  # corners fall outside, the centre stays


def test_shift_recomputes_x_with_the_original_preprocessing(digits):
    shifted = shifts.shift(digits, "invert", 1.0)
    assert shifted.preprocessor is digits.preprocessor and shifted.labels == digits.labels
    for name in ("train", "val", "test"):
        old, new = getattr(digits, name), getattr(shifted, name)
        np.testing.assert_array_equal(new.y, old.y)
        np.testing.assert_allclose(new.x, digits.preprocessor(new.raw_x), rtol=1e-6)
        assert new.x.dtype == np.float32
    split = shifts.shift(digits.test, "noise", 0.5, seed=4, image_shape=SHAPE, preprocessor=digits.preprocessor)
    np.testing.assert_array_equal(split.raw_x, shifts.noise(digits.test.raw_x, SHAPE, 0.5, seed=4))


def test_a_trained_model_loses_accuracy_on_shifted_digits(trained, digits):
    _, clean = mlkit.evaluate(trained, digits.test)
    assert clean > 0.9
    for kind in ("translate", "rotate", "noise", "thicken", "invert"):
        _, shifted = mlkit.evaluate(trained, shifts.shift(digits, kind, 1.0, seed=0).test)
        assert shifted < clean - 0.3, kind


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda x, d: shifts.shift(d, "blur", 0.5), "blur"),
        (lambda x, d: shifts.rotate(x, SHAPE, 1.5), "severity"),
        (lambda x, d: shifts.noise(x, (28, 28), 0.5), "784"),
        (lambda x, d: shifts.shift(d.test, "fade", 0.5), "image_shape"),
        (lambda x, d: shifts.shift(mlkit.load_dataset("moons", seed=0), "fade", 0.5), "image"),
    ],
    ids=["unknown kind", "severity above 1", "wrong image size", "split without its shape", "not images"],
)
def test_mistakes_name_what_was_wrong(call, word, digits):
    with pytest.raises(ValueError, match=word):
        call(digits.test.raw_x[:5], digits)
