import numpy as np
import pytest

import mlkit
from mlkit.lessons import widgets


@pytest.fixture(scope="module")
def digits_dashboard(digits):
    controls = {
        "learning_rate": widgets.log_slider("learning rate", 1e-3, 1e-5, 10.0),
        "epochs": widgets.int_slider("epochs", 5, 1, 50),
        "width": widgets.int_slider("width", 32, 8, 128, 8),
    }
    return widgets.TrainingDashboard(
        digits,
        lambda data, v: mlkit.MLP(data.num_features, (v["width"],), data.num_classes, seed=0),
        mlkit.TrainConfig(),
        controls,
        title="digits",
    )


def test_sliders_report_only_on_release(digits_dashboard):
    for control in digits_dashboard.controls.values():
        assert control.continuous_update is False


def test_train_draws_curves_and_status(digits_dashboard):
    history = digits_dashboard.train()
    assert history.status == "completed" and history.epochs == 5
    assert bytes(digits_dashboard.image.value).startswith(b"\x89PNG")
    lines = digits_dashboard.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), history.train_loss)
    assert "epoch 5/5" in digits_dashboard.status.value and "val acc" in digits_dashboard.status.value


def test_learning_rate_change_retrains_without_compiling(digits_dashboard):
    first = digits_dashboard.train()
    image, redraws = digits_dashboard.image.value, digits_dashboard.redraws
    before = mlkit.train.compiled.stats["compiles"]
    second = digits_dashboard.set_value("learning_rate", 1e-2)
    assert second is not first and second.train_loss != first.train_loss
    assert mlkit.train.compiled.stats["compiles"] == before
    assert digits_dashboard.redraws > redraws and bytes(digits_dashboard.image.value) != bytes(image)


def test_controls_are_disabled_while_training(digits_dashboard):
    seen = []
    digits_dashboard.panels[1] = lambda d, ax: seen.append(
        (d.training, d.controls["epochs"].disabled, d.stop_button.disabled)
    )
    try:
        digits_dashboard.set_value("epochs", 6)
    finally:
        digits_dashboard.panels[1] = widgets.accuracy_panel
    assert set(seen) == {(True, True, False)}  # every draw, the final one included: busy, controls off, Stop on
    assert not digits_dashboard.training and not digits_dashboard.controls["epochs"].disabled  # after: back
    assert digits_dashboard.stop_button.disabled


def test_stop_button_keeps_finished_epochs(digits_dashboard):
    digits_dashboard.controls["epochs"].value = 50  # a slider release starts a run in the background
    digits_dashboard.on_stop()
    digits_dashboard.wait()
    history = digits_dashboard.history
    assert history.status == "stopped" and 1 <= history.epochs < 50
    # the model kept is the one of the last finished epoch
    model_loss = mlkit.evaluate(digits_dashboard.model, digits_dashboard.data.val)[0]
    assert model_loss == pytest.approx(history.val_loss[-1], rel=1e-5)
    assert f"stopped by you after epoch {history.epochs}" in digits_dashboard.status_text
    assert not digits_dashboard.training and not digits_dashboard.controls["epochs"].disabled


def test_bad_value_shows_an_error_and_keeps_the_last_run(digits):
    dash = widgets.TrainingDashboard(
        digits,
        lambda data, v: mlkit.MLP(data.num_features, (8,), data.num_classes),
        mlkit.TrainConfig(epochs=1),
        {"batch_size": widgets.int_slider("batch", 32, 1, 5000)},
    )
    good = dash.train()
    assert dash.set_value("batch_size", 5000) is good
    assert "larger than the training split" in dash.status.value and "crimson" in dash.status.value
    assert not dash.training and not dash.controls["batch_size"].disabled


def test_explorer_calls_panels_on_change():
    calls = []
    slider = widgets.float_slider("x", 0.0, -1.0, 1.0, 0.1)
    explorer = widgets.Explorer(
        {"x": slider}, [lambda e, ax: calls.append(e.values["x"])], describe=lambda e: f"x = {e.values['x']:.1f}"
    )
    explorer.set_value("x", 0.5)
    assert calls == [0.5] and "x = 0.5" in explorer.status.value
