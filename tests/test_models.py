import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import mlkit


def test_mlp_matches_a_numpy_forward_pass():
    model = mlkit.MLP(5, hidden=(7, 3), num_classes=4, activation="tanh", seed=1)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    h = x
    for layer in model.layers:
        h = np.tanh(h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]))
    expected = h @ np.asarray(model.head.kernel[...]) + np.asarray(model.head.bias[...])
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, params",
    [
        (lambda: mlkit.LogisticRegression(64, 10), 64 * 10 + 10),
        (lambda: mlkit.MLP(64, (32,), 10), 64 * 32 + 32 + 32 * 10 + 10),
        (lambda: mlkit.MLP(64, (32,), 10, batch_norm=True, dropout=0.5), 64 * 32 + 32 + 2 * 32 + 32 * 10 + 10),
        (lambda: mlkit.ConvNet((8, 8), 10, channels=(4, 8)), 9 * 4 + 4 + 9 * 4 * 8 + 8 + 2 * 2 * 8 * 10 + 10),
    ],
)
def test_models_map_flat_rows_to_outputs(make, params):
    model = make()
    assert model(jnp.ones((3, 64))).shape == (3, 10)
    assert mlkit.count_params(model) == params


def test_dropout_is_random_in_training_and_off_in_inference():
    model = mlkit.MLP(4, (64,), 2, dropout=0.5, seed=0)
    x = jnp.ones((1, 4))
    assert not np.allclose(model(x), model(x))  # training mode: a fresh mask each call
    view = mlkit.eval_view(model)
    np.testing.assert_array_equal(view(x), view(x))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": 1.0}, "dropout must be in \\[0, 1\\)"),
        ({"dropout": -0.1}, "dropout must be in"),
        ({"activation": "swish!"}, "Unknown activation"),
    ],
)
def test_bad_model_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlkit.MLP(4, (8,), 2, **kwargs)


def test_same_seed_same_weights():
    a, b = mlkit.MLP(4, (8,), 2, seed=5), mlkit.MLP(4, (8,), 2, seed=5)
    for u, v in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b)), strict=True):
        np.testing.assert_array_equal(u, v)
