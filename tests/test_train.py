import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import mlkit
from mlkit.train.compiled import stats

QUICK = dict(epochs=3, batch_size=32, progress=False)


def small_model(data, seed=0, **kwargs):
    return mlkit.MLP(data.num_features, hidden=(32,), num_classes=data.num_classes, seed=seed, **kwargs)


def params_of(model):
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def assert_same_params(a, b):
    for u, v in zip(params_of(a), params_of(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_readme_script_reaches_97_percent_and_predictor_agrees(digits):
    model = mlkit.MLP(digits.num_features, hidden=(256, 256), num_classes=digits.num_classes, seed=0)
    history = mlkit.fit(model, digits, mlkit.TrainConfig(epochs=30, batch_size=32, learning_rate=1e-3, progress=False))
    assert history.status == "completed" and history.epochs == 30
    assert history.val_acc[-1] > 0.95 and history.train_loss[-1] < history.train_loss[0]
    predictor = mlkit.freeze(model, digits)
    labels = predictor.predict(digits.test.raw_x)
    assert (labels == digits.test.y).mean() >= 0.97
    direct = np.asarray(mlkit.eval_view(model)(digits.test.x)).argmax(-1)
    np.testing.assert_array_equal(labels, direct)
    probs = predictor.predict_proba(digits.test.raw_x[:1])
    assert probs.shape == (1, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_history_records_every_epoch(digits):
    history = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK))
    for series in (history.train_loss, history.train_acc, history.val_loss, history.val_acc, history.epoch_time):
        assert len(series) == 3 and all(np.isfinite(series))
    assert history.best_epoch == 1 + int(np.argmin(history.val_loss))
    assert "3 epochs" in repr(history)


def test_validation_counts_every_example_once(digits):
    model = small_model(digits)
    loss, acc = mlkit.evaluate(model, digits.val)
    logits = np.asarray(mlkit.eval_view(model)(digits.val.x))
    assert acc == pytest.approx((logits.argmax(1) == digits.val.y).mean())
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss == pytest.approx(-log_probs[np.arange(len(logits)), digits.val.y].mean(), rel=1e-5)


def test_same_seed_same_history(digits):
    config = mlkit.TrainConfig(**QUICK)
    a = mlkit.fit(small_model(digits, dropout=0.3), digits, config)
    b = mlkit.fit(small_model(digits, dropout=0.3), digits, config)
    assert a.train_loss == b.train_loss and a.val_loss == b.val_loss and a.val_acc == b.val_acc
    c = mlkit.fit(small_model(digits, dropout=0.3), digits, config.replace(seed=1))
    assert c.train_loss != a.train_loss


def test_learning_rate_change_compiles_nothing(digits):
    base = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-3))
    before = stats["compiles"]
    slow = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-4))
    fast = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-2))
    decayed = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-3, weight_decay=0.5))
    assert stats["compiles"] == before and 0 == slow.compile_time == fast.compile_time == decayed.compile_time
    assert slow.train_loss[-1] > base.train_loss[-1] > fast.train_loss[-1]  # the new learning rates took effect
    assert decayed.train_loss != base.train_loss  # and so did the weight decay


def test_one_optimiser_per_kind_steps_a_state_made_with_any_learning_rate(digits):
    """The step gets one optimiser object per kind (so its program stays cached); the values are in the state."""
    assert mlkit.train.optimizer("sgd") is mlkit.train.optimizer("sgd")
    model = small_model(digits)
    model.train()
    graphdef, params, rest = mlkit.models.split_params(model)
    batch = (jnp.asarray(digits.train.x[:32]), jnp.asarray(digits.train.y[:32]))
    steps = {}
    for lr in (0.1, 0.5):
        state = mlkit.train.make_optimizer(mlkit.TrainConfig(optimizer="sgd", learning_rate=lr)).init(params)
        carry = (params, rest, state)
        (stepped, _, _), _ = mlkit.train.train_step(graphdef, digits.task, mlkit.train.optimizer("sgd"), carry, batch)
        moved = jax.tree.map(lambda a, b, lr=lr: (a - b) / lr, params, stepped)
        steps[lr] = [np.asarray(d) for d in jax.tree.leaves(moved)]
    for small, large in zip(steps[0.1], steps[0.5], strict=True):  # both moved by lr x the same gradient
        np.testing.assert_allclose(small, large, rtol=1e-4, atol=1e-6)
    assert any(np.abs(g).max() > 0 for g in steps[0.1])
    with pytest.raises(ValueError, match="adagrad"):
        mlkit.train.optimizer("adagrad")


def test_shape_change_does_compile(digits):
    mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK))
    before = stats["compiles"]
    mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**{**QUICK, "batch_size": 48}))
    assert stats["compiles"] > before


def test_divergence_stops_and_keeps_last_finite_parameters(digits):
    model = small_model(digits)
    mlkit.fit(model, digits, mlkit.TrainConfig(**QUICK))
    good = params_of(model)
    history = mlkit.fit(model, digits, mlkit.TrainConfig(**QUICK, optimizer="sgd", learning_rate=1e6))
    assert history.status == "diverged" and history.epochs == 0
    assert "epoch 1" in history.message and "lower learning rate" in history.message
    for before, after in zip(good, params_of(model), strict=True):
        np.testing.assert_array_equal(before, after)


def test_divergence_in_a_later_epoch_keeps_the_epoch_before(digits, monkeypatch, patch_epochs):
    def goes_nan(run, *args):  # what a too-large step does: every number becomes NaN
        state, loss, acc = run(*args)
        state = jax.tree.map(lambda v: v * np.nan if np.issubdtype(v.dtype, np.floating) else v, state)
        return state, loss * np.nan, acc

    model = small_model(digits)
    patch_epochs(lambda n, run, *args: goes_nan(run, *args) if n == 3 else run(*args))
    history = mlkit.fit(model, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 5}))
    monkeypatch.undo()
    assert history.status == "diverged" and history.epochs == 2
    assert "in epoch 3:" in history.message and "lower learning rate than 0.001, e.g. 0.0001" in history.message
    reference = small_model(digits)
    expected = mlkit.fit(reference, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 2}))
    assert history.val_loss == expected.val_loss
    assert_same_params(model, reference)


def test_interrupt_keeps_model_and_history_of_last_finished_epoch(digits):
    def ctrl_c_after_two(history):
        if history.epochs == 2:
            raise KeyboardInterrupt

    model = small_model(digits)
    history = mlkit.fit(model, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 5}), callbacks=[ctrl_c_after_two])
    assert history.status == "interrupted" and history.epochs == 2 and "2 finished epochs" in history.message
    reference = small_model(digits)
    expected = mlkit.fit(reference, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 2}))
    assert history.val_loss == expected.val_loss
    assert_same_params(model, reference)


def test_interrupt_inside_an_epoch_keeps_the_previous_one(digits, monkeypatch, patch_epochs):
    def ctrl_c(run, *args):
        raise KeyboardInterrupt

    model = small_model(digits)
    patch_epochs(lambda n, run, *args: ctrl_c(run, *args) if n == 3 else run(*args))
    history = mlkit.fit(model, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 5}))
    assert history.status == "interrupted" and history.epochs == 2
    monkeypatch.undo()
    reference = small_model(digits)
    mlkit.fit(reference, digits, mlkit.TrainConfig(**{**QUICK, "epochs": 2}))
    assert_same_params(model, reference)


def test_callback_can_stop_training(digits):
    history = mlkit.fit(
        small_model(digits), digits, mlkit.TrainConfig(**{**QUICK, "epochs": 10}), callbacks=[lambda h: h.epochs < 4]
    )
    assert history.status == "stopped" and history.epochs == 4


def test_callbacks_see_the_model_of_the_current_epoch(digits):
    model = small_model(digits)
    seen = []
    mlkit.fit(
        model,
        digits,
        mlkit.TrainConfig(**QUICK),
        callbacks=[lambda h: seen.append(mlkit.evaluate(model, digits.val)[0])],
    )
    history_like = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK))
    np.testing.assert_allclose(seen, history_like.val_loss, rtol=1e-5)


def test_early_stopping_restores_the_best_epoch(digits):
    tiny = mlkit.make_dataset(digits.train.raw_x[:100], digits.train.y[:100], seed=0)
    model = mlkit.MLP(64, (256, 256), 10, seed=0)
    history = mlkit.fit(
        model, tiny, mlkit.TrainConfig(epochs=200, batch_size=16, learning_rate=1e-2, patience=5, progress=False)
    )
    assert history.status == "early_stopped" and history.epochs < 200
    assert history.epochs - history.best_epoch == 5
    assert mlkit.evaluate(model, tiny.val)[0] == pytest.approx(min(history.val_loss), rel=1e-5)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"patience": 0}, "patience"),
        ({"learning_rate": "1e-3"}, "learning_rate"),  # a ValueError, not a bare TypeError
        ({"momentum": "0.9"}, "momentum"),
        ({"weight_decay": None}, "weight_decay"),
    ],
)
def test_invalid_hyperparameters_fail_at_once(changes, message):
    with pytest.raises(ValueError, match=message):
        mlkit.TrainConfig(**changes)


def test_unknown_hyperparameter_is_an_error():
    with pytest.raises(TypeError):
        mlkit.TrainConfig(learnig_rate=1e-3)


def test_problems_are_found_before_compiling(digits):
    before = stats["compiles"]
    with pytest.raises(ValueError, match="larger than the training split"):
        mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(batch_size=5000, progress=False))
    with pytest.raises(ValueError, match="num_classes=10"):
        mlkit.fit(mlkit.MLP(64, (8,), 3), digits, mlkit.TrainConfig(**QUICK))
    with pytest.raises(ValueError, match="64 features"):
        mlkit.fit(mlkit.MLP(10, (8,), 10), digits, mlkit.TrainConfig(**QUICK))
    with pytest.raises(ValueError, match="dropout"):
        mlkit.MLP(64, (8,), 10, dropout=1.5)
    assert stats["compiles"] == before


def test_nan_in_training_data_is_refused(digits):
    x = digits.train.raw_x.copy()
    x[3, 5] = np.nan
    data = mlkit.make_dataset(x, digits.train.y, preprocess="none")
    with pytest.raises(ValueError, match="NaN"):
        mlkit.fit(small_model(data), data, mlkit.TrainConfig(**QUICK))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_each_optimizer_learns(digits, optimizer):
    lr = {"sgd": 0.1, "momentum": 0.02, "adam": 3e-3}[optimizer]
    history = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK, optimizer=optimizer, learning_rate=lr))
    assert history.val_acc[-1] > 0.85


def test_batch_norm_dropout_and_convnet_train(digits):
    mlp = small_model(digits, batch_norm=True, dropout=0.2)
    assert mlkit.fit(mlp, digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-2)).val_acc[-1] > 0.85
    # Batch norm's running statistics moved away from their initial values.
    assert not np.allclose(mlp.norms[0].mean[...], 0)
    conv = mlkit.ConvNet(digits.image_shape, digits.num_classes, seed=0)
    assert mlkit.fit(conv, digits, mlkit.TrainConfig(**QUICK, learning_rate=1e-2)).val_acc[-1] > 0.85


def test_regression_fits_the_curve():
    data = mlkit.load_dataset("regression_curve", n=200, noise=0.05, seed=0)
    model = mlkit.MLP(1, (64, 64), 1, activation="tanh", seed=0)
    history = mlkit.fit(model, data, mlkit.TrainConfig(epochs=200, batch_size=16, learning_rate=1e-2, progress=False))
    assert history.val_loss[-1] < 0.05 < history.val_loss[0] and np.isnan(history.val_acc[-1])
    predictor = mlkit.freeze(model, data)
    assert predictor.predict(data.test.raw_x).shape == (len(data.test),)


def test_the_executable_cache_is_bounded_and_drops_jax_caches_with_it(digits, monkeypatch):
    from mlkit.train import compiled

    cleared = []
    real_clear = jax.clear_caches
    monkeypatch.setattr(compiled, "MAX_EXECUTABLES", 6)
    monkeypatch.setattr(compiled.jax, "clear_caches", lambda: cleared.append(1) or real_clear())
    first = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK))
    for width in range(5, 15):  # new shapes, two executables each (train and validate)
        mlkit.fit(mlkit.MLP(64, (width,), 10), digits, mlkit.TrainConfig(**QUICK))
        assert len(compiled._EXECUTABLES) <= 6
    assert cleared  # JAX's tracing caches went with the evicted programs
    before = stats["compiles"]
    again = mlkit.fit(small_model(digits), digits, mlkit.TrainConfig(**QUICK))  # evicted long ago: compiles again
    assert stats["compiles"] > before and again.val_loss == first.val_loss
