"""Convolutions: the NumPy filter against flax, the ConvNet's cost formulas, and resizing inside the predictor."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import mlkit
from mlkit import bench
from mlkit.infer.resize import resize_matrix, resizer, with_resize
from mlkit.lessons.vision import (
    EDGES,
    conv2d,
    conv_lab,
    conv_matrix,
    convnet_flops,
    convnet_params,
    first_filters,
)


@pytest.fixture(scope="module")
def mnist():
    return mlkit.load_dataset("mnist5k", seed=0)


@pytest.fixture(scope="module")
def convnet(mnist):
    model = mlkit.ConvNet(mnist.image_shape, mnist.num_classes, channels=(4, 8), seed=0)
    mlkit.fit(model, mnist, mlkit.TrainConfig(epochs=1, learning_rate=3e-3, progress=False))
    return model


# ---------------------------------------------------------------- the convolution by hand


@pytest.mark.parametrize("k", [3, 5])
def test_numpy_convolution_matches_flax_conv(k):
    rng = np.random.default_rng(k)
    image, kernel = rng.standard_normal((9, 7)).astype(np.float32), rng.standard_normal((k, k)).astype(np.float32)
    layer = nnx.Conv(1, 1, (k, k), use_bias=False, rngs=nnx.Rngs(0))
    layer.kernel[...] = jnp.asarray(kernel)[:, :, None, None]
    expected = np.asarray(layer(jnp.asarray(image)[None, :, :, None]))[0, :, :, 0]
    np.testing.assert_allclose(conv2d(image, kernel), expected, atol=1e-5)


def test_a_convolution_is_a_dense_layer_with_local_shared_weights():
    kernel = EDGES["left-to-right edges"]
    image = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    matrix = conv_matrix(kernel, image.shape)
    np.testing.assert_allclose(matrix @ image.ravel(), conv2d(image, kernel).ravel(), atol=1e-5)
    assert matrix.shape == (30, 30) and (np.count_nonzero(matrix, axis=1) <= 6).all()  # 6 nonzero taps of 9
    assert set(np.unique(matrix)) <= set(np.unique(kernel))  # every weight is one of the kernel's


@pytest.mark.parametrize(
    ("shape", "channels"), [((28, 28), (8, 16)), ((28, 28), (4,)), ((28, 28), (8, 16, 32)), ((8, 8), (16, 32))]
)
def test_cost_formulas_match_the_model_and_xla(shape, channels):
    model = mlkit.ConvNet(shape, 10, channels=channels, seed=0)
    assert convnet_params(shape, channels, 10) == mlkit.count_params(model)
    counted = bench.flops(lambda x: model(x), jnp.zeros((1, shape[0] * shape[1])))
    assert 0.7 < counted / convnet_flops(shape, channels, 10) < 1.1  # XLA skips the taps that overhang the border


def test_first_filters_are_the_first_layer_kernels(convnet):
    filters = first_filters(convnet)
    assert filters.shape == (4, 3, 3)
    np.testing.assert_array_equal(filters[2], np.asarray(convnet.convs[0].kernel[...])[:, :, 0, 2])


def test_conv_lab_trains_the_chosen_shape_and_says_what_it_costs(mnist):
    lab = conv_lab(mnist, threaded=False, render=False)
    lab.controls["epochs"].value = 1
    lab.controls["train_size"].value = 300
    history = lab.set_value("filters", 4)
    assert history is not None and history.epochs == 1
    assert [c.out_features for c in lab.model.convs] == [4, 8]
    assert f"{convnet_params((28, 28), (4, 8), 10):,} parameters" in lab.status_text
    lab.set_value("blocks", 3)
    assert [c.out_features for c in lab.model.convs] == [4, 8, 16] and len(lab.data.train) == 300
    with pytest.raises(ValueError, match="image set"):
        conv_lab(mlkit.load_dataset("moons", n=200))


# ---------------------------------------------------------------- resizing inside the predictor


@pytest.mark.parametrize("method", ["linear", "cubic", "nearest"])
def test_resizer_is_jax_image_resize_into_a_centred_box(method):
    x = np.random.default_rng(1).random((3, 8 * 6)).astype(np.float32)
    resized = np.asarray(resizer((8, 6), (28, 26), box=(20, 18), scale=2.0, method=method)(x)).reshape(3, 28, 26)
    direct = jax.vmap(lambda im: jax.image.resize(im, (20, 18), method, antialias=True))(2 * x.reshape(3, 8, 6))
    np.testing.assert_allclose(resized[:, 4:24, 4:22], np.asarray(direct), atol=1e-5)
    assert np.abs(resized).sum() == pytest.approx(np.abs(resized[:, 4:24, 4:22]).sum())  # zeros around the box


def test_shrinking_is_antialiased():
    stripes = np.tile([1.0, 0.0], 28)  # a 1-pixel stripe pattern: sampling would keep only 1s or only 0s
    row = resize_matrix(56, 14, 14) @ stripes
    np.testing.assert_allclose(row, 0.5, atol=0.05)


def test_with_resize_refuses_shapes_that_do_not_fit(convnet, mnist):
    frozen = mlkit.freeze(convnet, mnist)
    with pytest.raises(ValueError, match="takes 784"):
        with_resize(frozen, (8, 8), to=(8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        with_resize(frozen, (8, 8), to=(28, 28), box=(30, 20))
    with pytest.raises(ValueError, match="Unknown resize method"):
        with_resize(frozen, (8, 8), to=(28, 28), method="bilinear")
    with pytest.raises(ValueError, match="two positive whole numbers"):
        with_resize(frozen, (8, 0), to=(28, 28))


def test_a_resized_predictor_runs_the_resize_inside_and_its_artifact_does_too(convnet, mnist, digits, tmp_path):
    frozen = mlkit.freeze(convnet, mnist)
    small = with_resize(frozen, (8, 8), to=(28, 28), box=(20, 20), scale=255 / 16)
    x8 = digits.test.raw_x[:50]
    by_hand = frozen.predict_proba(np.asarray(resizer((8, 8), (28, 28), box=(20, 20), scale=255 / 16)(x8)))
    np.testing.assert_allclose(small.predict_proba(x8), by_hand, atol=1e-5)
    assert small.num_features == 64 and small.labels == frozen.labels
    with pytest.raises(ValueError, match="shape \\(n, 64\\)"):
        small.predict(mnist.test.raw_x[:2])  # 28x28 rows are not what it takes now

    path = mlkit.save_predictor(small, tmp_path / "digits-8x8")
    assert json.loads((path / "metadata.json").read_text())["input"]["shape"] == ["b", 64]
    loaded = mlkit.load_predictor(path)
    assert loaded.num_features == 64
    np.testing.assert_allclose(loaded.predict_proba(x8), small.predict_proba(x8), atol=1e-6)


def test_a_resized_predictor_converts_to_onnx(convnet, mnist, digits, tmp_path):
    if os.environ.get("CI") != "true":  # in CI the extra is installed and this must run
        pytest.importorskip("jax2onnx", reason="needs the optional extra: pip install -e '.[onnx]'")
    small = with_resize(mlkit.freeze(convnet, mnist), (8, 8), to=(28, 28), box=(20, 20), scale=255 / 16)
    loaded = mlkit.load_predictor(mlkit.save_predictor(small, tmp_path / "digits-8x8.onnx"))
    x8 = digits.test.raw_x
    np.testing.assert_allclose(loaded.predict_proba(x8), small.predict_proba(x8), atol=1e-5)


def test_fitting_the_digit_in_the_training_box_beats_stretching_it(convnet, mnist, digits):
    frozen = mlkit.freeze(convnet, mnist)
    boxed = with_resize(frozen, (8, 8), to=(28, 28), box=(20, 20), scale=255 / 16)
    stretched = with_resize(frozen, (8, 8), to=(28, 28), scale=255 / 16)
    assert mlkit.infer.accuracy(boxed, digits.test) > mlkit.infer.accuracy(stretched, digits.test) + 0.15
