import jax
import pytest

import mlkit

# Catch (n, 1) vs (n,) broadcasting mistakes, as equinox's test suite does.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def digits():
    return mlkit.load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def trained(digits):
    """A small MLP trained briefly on digits: enough for inference tests."""
    model = mlkit.MLP(digits.num_features, hidden=(64,), num_classes=digits.num_classes, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=5, progress=False))
    return model
