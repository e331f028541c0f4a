"""A run whose loss explodes is a diverged run, not a finished one; runs that learn are never flagged."""

import re

import jax
import numpy as np
import pytest
from flax import nnx

import mlkit
from mlkit.lessons import training

OPTIMIZERS = ("adam", "sgd", "momentum")
EXPLODING = (1e2, 1e4, 1e8)


@pytest.fixture(scope="module")
def curve():
    return mlkit.load_dataset("regression_curve", n=200, seed=0)


def mlp(data, seed=0, hidden=(32,)):
    return mlkit.MLP(data.num_features, hidden, data.num_classes, seed=seed)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("lr", EXPLODING)
def test_too_large_a_learning_rate_is_flagged_on_digits(digits, optimizer, lr):
    history = mlkit.fit(
        mlp(digits), digits, mlkit.TrainConfig(epochs=3, optimizer=optimizer, learning_rate=lr, progress=False)
    )
    assert history.status == "diverged", history
    assert "lower learning rate" in history.message


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("lr", EXPLODING)
def test_too_large_a_learning_rate_is_flagged_on_regression(curve, optimizer, lr):
    config = mlkit.TrainConfig(epochs=3, batch_size=16, optimizer=optimizer, learning_rate=lr, progress=False)
    assert mlkit.fit(mlp(curve), curve, config).status == "diverged"


def test_an_explosion_that_stays_finite_is_named_with_its_starting_level(digits):
    history = mlkit.fit(mlp(digits), digits, mlkit.TrainConfig(epochs=3, learning_rate=1e2, progress=False))
    assert history.epochs == 0
    assert re.search(r"loss reached [\d.e+]+, more than 10x its starting level \(2\.\d+\)", history.message)
    assert "parameters it had before this fit" in history.message


def test_explosion_limit_starts_from_chance_or_the_untrained_loss(digits, curve):
    from mlkit.train.steps import explosion_limit

    assert explosion_limit(digits, 0.1) == pytest.approx(10 * np.log(10))
    assert explosion_limit(digits, 50.0) == 500.0  # a model that starts far above chance
    assert explosion_limit(curve, 0.0) == pytest.approx(10 * np.var(curve.train.y.astype(np.float64)), rel=1e-6)


@pytest.mark.parametrize(
    "name, build",
    [
        ("playground", lambda seed, digits: training.playground(seed=seed)),
        ("digits_lab", lambda seed, digits: training.digits_lab(digits, seed=seed)),
        ("overfitting_lab", lambda seed, digits: training.overfitting_lab(digits, seed=seed)),
        ("capacity_lab", lambda seed, digits: training.capacity_lab(seed=seed)),
    ],
)
def test_lesson_dashboards_at_their_defaults_are_never_flagged(digits, name, build):
    for seed in (0, 1, 2):
        history = build(seed, digits).train()
        assert history is not None and history.status == "completed", (name, seed, history.message)


@pytest.mark.parametrize(
    "optimizer, lr, batch_size, epochs",
    [
        ("adam", 1e-3, 32, 30),
        ("sgd", 0.1, 16, 20),
        ("sgd", 1e-2, 32, 10),
        ("momentum", 1e-2, 32, 10),
        ("adam", 1e-1, 32, 10),
    ],
)
def test_notebook_settings_that_learn_are_never_flagged(digits, optimizer, lr, batch_size, epochs):
    config = mlkit.TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, learning_rate=lr)
    for seed in (0, 1, 2):
        history = mlkit.fit(mlp(digits, seed, (256, 256)), digits, config.replace(seed=seed, progress=False))
        assert history.status == "completed", (optimizer, lr, seed, history.message)


def test_sweep_marks_each_run_and_best_skips_the_diverged(digits):
    config = mlkit.TrainConfig(epochs=3, progress=False)
    result = mlkit.sweep(lambda seed: mlp(digits, seed), digits, config, learning_rates=[1e-3, 1e2])
    assert list(result.status) == ["completed", "diverged"]
    assert result.best() == 0
    # Even when the diverged run's final validation loss is lower, it never wins.
    result.val_loss[1, -1] = -1.0
    assert result.best() == 0
    result.status[:] = "diverged"
    with pytest.raises(ValueError, match=r"Every run diverged.*sweep lower learning rates"):
        result.best()


def test_nan_targets_are_refused_before_compiling(curve):
    y = curve.train.y.copy()
    y[3] = np.nan
    bad = mlkit.data.dataset.dataclasses.replace(curve, train=mlkit.data.Split(curve.train.raw_x, curve.train.x, y))
    with pytest.raises(ValueError, match="train split holds 1 NaN or infinite target"):
        mlkit.fit(mlp(curve), bad, mlkit.TrainConfig(epochs=1, batch_size=16, progress=False))


def spiking(spiked):
    """An epoch wrapper for ``patch_epochs``: a training loss 1000x too high on the 1-based epochs in ``spiked``."""

    def wrap(n, run, *args):
        state, loss, acc = run(*args)
        return state, loss * 1000 if n in spiked else loss, acc

    return wrap


def test_one_spike_that_recovers_is_not_divergence(digits, patch_epochs):
    patch_epochs(spiking({2}))
    history = mlkit.fit(mlp(digits), digits, mlkit.TrainConfig(epochs=4, progress=False))
    assert history.status == "completed" and history.epochs == 4
    assert history.train_loss[1] > 100 * history.train_loss[0] and history.best_epoch != 2


@pytest.mark.parametrize("spiked, kept", [({2, 3}, 1), ({4}, 3), ({1, 2}, 0)])
def test_two_spikes_running_or_one_at_the_end_diverge_and_keep_the_epoch_before(digits, patch_epochs, spiked, kept):
    reference = mlp(digits)
    mlkit.fit(reference, digits, mlkit.TrainConfig(epochs=kept, progress=False)) if kept else None
    model = mlp(digits)
    patch_epochs(spiking(spiked))
    history = mlkit.fit(model, digits, mlkit.TrainConfig(epochs=4, progress=False))
    assert history.status == "diverged" and history.epochs == kept, history.message
    assert f"in epoch {max(spiked)}:" in history.message
    for a, b in zip(jax.tree.leaves(nnx.state(model)), jax.tree.leaves(nnx.state(reference)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sweep_uses_the_same_rule():
    from mlkit.train.sweeps import diverged_runs

    loss = np.array([[1.0, 99.0, 1.0], [1.0, 99.0, 99.0], [1.0, 1.0, 99.0], [1.0, 1.0, 1.0], [1.0, np.nan, 1.0]])
    val = np.ones_like(loss)
    assert diverged_runs(loss, val, np.full((5, 1), 10.0)).tolist() == [False, True, True, False, True]
    val[3, 0] = np.inf
    assert diverged_runs(loss, val, np.full((5, 1), 10.0))[3]


@pytest.fixture(scope="module")
def good_state(digits):
    """The state of a small MLP trained to about 96% validation accuracy (each test builds its own model)."""
    model = mlp(digits, hidden=(64, 64))
    history = mlkit.fit(model, digits, mlkit.TrainConfig(epochs=15, progress=False))
    assert history.status == "completed" and history.val_acc[-1] > 0.94
    return nnx.state(model)


@pytest.mark.parametrize("lr", [0.3, 1.0])
def test_training_a_good_model_further_until_it_is_at_chance_diverges_and_keeps_the_start(digits, good_state, lr):
    model = mlp(digits, hidden=(64, 64))
    nnx.update(model, good_state)
    before = [np.asarray(a) for a in jax.tree.leaves(nnx.state(model))]
    history = mlkit.fit(model, digits, mlkit.TrainConfig(epochs=20, learning_rate=lr, progress=False))
    assert history.status == "diverged", history
    assert "far worse than it began" in history.message and "parameters it had before this fit" in history.message
    assert history.epochs == 20 and history.val_acc[-1] < 0.2  # the curves show what happened
    for a, b in zip(before, jax.tree.leaves(nnx.state(model)), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_a_fresh_model_that_learns_then_falls_to_chance_diverges_and_keeps_its_peak(digits):
    model = mlp(digits, hidden=(64, 64))
    config = mlkit.TrainConfig(epochs=60, optimizer="momentum", learning_rate=0.3, progress=False)
    history = mlkit.fit(model, digits, config)
    assert history.status == "diverged", history
    assert "no better than chance" in history.message and "lower learning rate" in history.message
    peak = int(re.search(r"parameters of epoch (\d+)", history.message).group(1))
    assert mlkit.evaluate(model, digits.val)[1] == pytest.approx(history.val_acc[peak - 1])
    assert history.val_acc[peak - 1] > 0.5


def test_random_labels_learn_nothing(digits):
    labels = np.random.default_rng(0).integers(0, 10, len(digits.train) + len(digits.val) + len(digits.test))
    x = np.concatenate([digits.train.raw_x, digits.val.raw_x, digits.test.raw_x])
    noise = mlkit.make_dataset(x, labels, seed=0)
    history = mlkit.fit(mlp(noise), noise, mlkit.TrainConfig(epochs=5, progress=False))
    assert history.status == "learned_nothing", history
    assert "no better than chance" in history.message and history.epochs == 5


def test_sweep_judges_a_run_that_falls_to_chance_as_fit_does(digits):
    config = mlkit.TrainConfig(epochs=60, optimizer="momentum", progress=False)
    result = mlkit.sweep(lambda seed: mlp(digits, seed, (64, 64)), digits, config, learning_rates=[1e-2, 0.3])
    fitted = [
        mlkit.fit(mlp(digits, 0, (64, 64)), digits, config.replace(learning_rate=lr)).status for lr in (1e-2, 0.3)
    ]
    assert list(result.status) == fitted == ["completed", "diverged"]


def test_sweep_marks_random_labels_as_learned_nothing(digits):
    labels = np.random.default_rng(0).integers(0, 10, len(digits.train) + len(digits.val) + len(digits.test))
    x = np.concatenate([digits.train.raw_x, digits.val.raw_x, digits.test.raw_x])
    noise = mlkit.make_dataset(x, labels, seed=0)
    result = mlkit.sweep(lambda seed: mlp(noise, seed), noise, mlkit.TrainConfig(epochs=5, progress=False))
    assert list(result.status) == ["learned_nothing"]


def test_a_spike_that_leaves_the_model_at_chance_is_divergence_not_learning_nothing(digits):
    config = mlkit.TrainConfig(epochs=20, optimizer="sgd", learning_rate=3.0, progress=False)
    history = mlkit.fit(mlp(digits, hidden=(64, 64)), digits, config)
    assert history.status == "diverged", history
    assert "spiked to" in history.message and "no better than chance" in history.message
    result = mlkit.sweep(lambda seed: mlp(digits, seed, (64, 64)), digits, config)
    assert list(result.status) == ["diverged"]
