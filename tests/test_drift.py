import numpy as np
import pytest

import mlkit
from mlkit.infer import drift

SHAPE = (8, 8)


@pytest.mark.parametrize("kind", sorted(drift.KINDS))
def test_severity_zero_is_the_identity(kind, digits):
    x = digits.test.raw_x
    out = drift.KINDS[kind](x, SHAPE, 0.0, seed=3)
    np.testing.assert_array_equal(out, x)
    assert out is not x


@pytest.mark.parametrize("kind", sorted(drift.KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_shape_dtype_and_range_are_kept(kind, dtype, digits):
    x = digits.test.raw_x[:50].astype(dtype)
    for severity in (0.5, 1.0):
        out = drift.KINDS[kind](x, SHAPE, severity, seed=0, value_range=(0, 16))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 16
        assert not np.array_equal(out, x)


@pytest.mark.parametrize("kind", ["translate", "rotate", "noise"])
def test_random_shifts_are_reproducible_by_seed(kind, digits):
    x = digits.test.raw_x[:50]
    np.testing.assert_array_equal(drift.KINDS[kind](x, SHAPE, 0.7, seed=1), drift.KINDS[kind](x, SHAPE, 0.7, seed=1))
    assert not np.array_equal(drift.KINDS[kind](x, SHAPE, 0.7, seed=1), drift.KINDS[kind](x, SHAPE, 0.7, seed=2))


def test_shifts_do_what_they_say():
    image = np.zeros((1, 64), np.float32)
    image[0, 3 * 8 + 3] = 16.0  # one bright pixel at row 3, column 3
    assert drift.thicken(image, SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)[2:5, 2:5].min() == 16.0
    np.testing.assert_allclose(drift.fade(image, SHAPE, 1.0, value_range=(0, 16)).max(), 16.0 * (1 - drift.FADE))
    assert drift.invert(image, SHAPE, 1.0, value_range=(0, 16)).sum() == 16.0 * 63
    moved = drift.translate(image, SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)
    rows, cols = np.nonzero(moved)
    centre = np.array([np.average(rows, weights=moved[rows, cols]), np.average(cols, weights=moved[rows, cols])])
    np.testing.assert_allclose(np.linalg.norm(centre - 3), drift.MAX_SHIFT * 8, atol=1e-6)  # moved 2 pixels
    turned = drift.rotate(np.full((1, 64), 16.0, np.float32), SHAPE, 1.0, value_range=(0, 16)).reshape(8, 8)
    assert turned[0, 0] == 0 and turned[3, 3] == 16  # corners fall outside, the centre stays


def test_shift_recomputes_x_with_the_original_preprocessing(digits):
    shifted = drift.shift(digits, "invert", 1.0)
    assert shifted.preprocessor is digits.preprocessor and shifted.labels == digits.labels
    for name in ("train", "val", "test"):
        old, new = getattr(digits, name), getattr(shifted, name)
        np.testing.assert_array_equal(new.y, old.y)
        np.testing.assert_allclose(new.x, digits.preprocessor(new.raw_x), rtol=1e-6)
        assert new.x.dtype == np.float32
    split = drift.shift(digits.test, "noise", 0.5, seed=4, image_shape=SHAPE, preprocessor=digits.preprocessor)
    np.testing.assert_array_equal(split.raw_x, drift.noise(digits.test.raw_x, SHAPE, 0.5, seed=4))


def test_a_trained_model_suffers_from_drift(trained, digits):
    _, clean = mlkit.evaluate(trained, digits.test)
    assert clean > 0.9
    for kind in ("translate", "rotate", "noise", "thicken", "invert"):
        _, shifted = mlkit.evaluate(trained, drift.shift(digits, kind, 1.0, seed=0).test)
        assert shifted < clean - 0.3, kind


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x, d: drift.shift(d, "blur", 0.5), r"Unknown shift 'blur'; expected one of \['fade'"),
        (lambda x, d: drift.rotate(x, SHAPE, 1.5), r"severity must be in \[0, 1\].*got 1.5"),
        (lambda x, d: drift.noise(x, (28, 28), 0.5), r"Expected rows of 28x28 = 784 pixels.*got shape \(5, 64\)"),
        (lambda x, d: drift.shift(d.test, "fade", 0.5), r"needs image_shape=\(h, w\) and preprocessor="),
    ],
)
def test_mistakes_say_what_was_expected(call, message, digits):
    with pytest.raises(ValueError, match=message):
        call(digits.test.raw_x[:5], digits)
