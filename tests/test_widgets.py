import dataclasses
import math
import threading
import time

import numpy as np
import pytest

import mlkit
from mlkit.lessons import widgets
from mlkit.lessons.explorers import LessonExplorer


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


def test_nothing_is_disabled_during_a_run(digits_dashboard):
    """Disabling the focused slider would hand keyboard focus to the notebook (its arrow keys fold cells)."""
    sidebar = [*digits_dashboard.controls.values(), digits_dashboard.train_button, digits_dashboard.stop_button]
    disabled = []

    def record(change):
        disabled.append(change["owner"])

    for widget in sidebar:
        widget.observe(record, names="disabled")
    seen = []
    digits_dashboard.panels[1] = lambda d, ax: seen.append((d.training, d.stop_button.button_style))
    try:
        digits_dashboard.set_value("epochs", 6)
    finally:
        digits_dashboard.panels[1] = widgets.accuracy_panel
        for widget in sidebar:
            widget.unobserve(record, names="disabled")
    assert seen and set(seen) == {(True, "danger")}  # every draw, the final one included: busy, Stop lit
    assert not disabled and not any(w.disabled for w in sidebar)
    assert not digits_dashboard.training and digits_dashboard.stop_button.button_style == ""


def test_changes_during_a_run_train_once_more_with_the_latest_values(digits, monkeypatch):
    """Three presses during a run: the run stops after its epoch, then one run trains the last value."""
    release, started, runs = threading.Event(), threading.Event(), []

    def slow_data(values):  # the first run waits here, after reading its values, until the presses are in
        started.set()
        assert release.wait(60)
        return digits

    def spy(model, data, config, **kwargs):
        runs.append(config.epochs)
        return fit(model, data, config, **kwargs)

    fit = widgets.fit
    monkeypatch.setattr(widgets, "fit", spy)
    dash = widgets.TrainingDashboard(
        slow_data,
        lambda data, v: mlkit.MLP(data.num_features, (16,), data.num_classes),
        mlkit.TrainConfig(),
        {"epochs": widgets.int_slider("epochs", 40, 1, 50)},
        render=False,
    )
    dash.controls["epochs"].value = 30  # a release: the run starts in the background
    assert started.wait(60)
    for epochs in (31, 32, 33):  # arrow presses while it runs
        dash.controls["epochs"].value = epochs
    release.set()
    dash.wait()
    assert runs == [30, 33]
    assert dash.history.status == "completed" and dash.history.epochs == 33
    assert dash.status_text.startswith("epoch 33/33 · ") and not dash.training

    runs.clear()
    dash.data, release = None, threading.Event()  # the next run waits in slow_data again
    started.clear()
    dash.controls["epochs"].value = 20
    assert started.wait(60)
    dash.on_stop()  # Stop, then a move: the move is what the learner wants trained
    dash.controls["epochs"].value = 21
    release.set()
    dash.wait()
    assert runs == [20, 21] and dash.history.status == "completed" and dash.history.epochs == 21


def test_a_new_shape_says_compiling_before_it_trains(digits):
    dash = widgets.TrainingDashboard(
        digits,
        lambda data, v: mlkit.MLP(data.num_features, (v["width"],), data.num_classes),
        mlkit.TrainConfig(epochs=2),
        {"width": widgets.int_slider("width", 40, 8, 128, 8), "learning_rate": widgets.log_slider("lr", 1e-3, 1e-5, 1)},
        render=False,
    )
    shown = []
    dash.status.observe(lambda change: shown.append(dash.status_text), names="value")
    dash.set_value("width", 48)  # a width no dashboard of this process has trained
    assert "compiling" in shown[0] and shown[1].startswith("epoch 1/2 ·")
    assert not any("compiling" in text for text in shown[1:])
    shown.clear()
    dash.set_value("learning_rate", 1e-2)  # the same shapes: nothing to compile, nothing said
    assert shown and not any("compiling" in text for text in shown)


def test_bad_runs_warn_with_a_hint_and_good_runs_stay_plain(digits):
    dash = widgets.TrainingDashboard(
        digits,
        lambda data, v: mlkit.MLP(data.num_features, (32,), data.num_classes, seed=0),
        mlkit.TrainConfig(epochs=3),
        {"learning_rate": widgets.log_slider("learning rate", 1e-3, 1e-5, 10.0)},
        render=False,
    )
    good = dash.train()
    assert good.status == "completed" and good.val_acc[-1] > 0.8
    assert dash.warning == "" and "mlkit-plain" in dash.status.value and "mlkit-warning" not in dash.status.value

    diverged = dash.set_value("learning_rate", 10.0)
    assert diverged.status == "diverged"
    assert "mlkit-warning" in dash.status.value and diverged.message in dash.status_text
    assert "lower learning rate" in dash.warning
    fair = diverged.epochs and diverged.val_acc[-1] > 0.5  # the kept epoch: a fair accuracy gets the why, no other
    assert ("confident mistake" in dash.warning) == bool(fair)

    stuck = dash.set_value("learning_rate", 1e-5)  # completed, but barely moved from a blind guess
    assert stuck.status in ("completed", "learned_nothing") and stuck.val_acc[-1] < 0.15  # fit may say so itself
    assert " chance (10%" in dash.warning and "higher learning rate" in dash.warning
    assert "mlkit-warning" in dash.status.value and dash.status_text.startswith("epoch 3/3 · ")

    dash.set_value("learning_rate", 1e-3)
    assert dash.warning == "" and "mlkit-warning" not in dash.status.value


def test_run_warning_explains_a_high_loss_beside_a_high_accuracy_only_when_the_accuracy_is_fair(digits):
    history = mlkit.train.History(
        train_loss=[1.0, 30.0], train_acc=[0.6, 0.6], val_loss=[2.0, 4e5], val_acc=[0.11, 0.12], status="completed"
    )
    hint = widgets.run_warning(history, digits, learning_rate=0.1)
    assert "not far above chance (10%" in hint and "lower learning rate than 0.1, e.g. 0.01" in hint
    assert "cross-entropy" not in hint  # 12% is no fair accuracy: nothing to reconcile
    worse = widgets.run_warning(dataclasses.replace(history, val_acc=[0.05, 0.007]), digits, learning_rate=0.1)
    assert worse.startswith("Validation accuracy 0.7% is below chance (10%") and "worse than a blind guess" in worse
    fine = dataclasses.replace(history, val_acc=[0.9, 0.95])
    assert widgets.run_warning(fine, digits, learning_rate=0.1) == ""
    exploded = dataclasses.replace(fine, status="diverged", message="Training diverged at epoch 3.")
    hint = widgets.run_warning(exploded, digits, learning_rate=0.1)
    assert hint.startswith("Training diverged") and "ln 10 = 2.30" in hint and "accuracy only counts" in hint
    nothing_kept = mlkit.train.History(status="diverged", message="Training diverged in epoch 1.")
    assert widgets.run_warning(nothing_kept, digits, learning_rate=0.1) == "Training diverged in epoch 1."


def test_run_warning_blames_capacity_not_the_rate_when_the_loss_falls_from_just_above_a_guess(digits):
    """A too-small network: its first epoch sits a hair above ln 10 and the loss then falls slowly."""
    guess = math.log(10)
    history = mlkit.train.History(
        train_loss=[guess * 1.12, guess * 1.05, guess], val_loss=[2.4, 2.3, 2.2], val_acc=[0.11, 0.12, 0.13]
    )
    hint = widgets.run_warning(history, digits, learning_rate=0.01)
    assert "above chance" in hint and "barely fell" in hint and "wider or deeper" in hint
    assert "lower learning rate" not in hint
    blown = dataclasses.replace(history, train_loss=[guess * 3, guess * 2.5, guess * 2.4])
    assert "lower learning rate" in widgets.run_warning(blown, digits, learning_rate=0.01)


def test_stop_between_runs_stops_nothing(digits_dashboard):
    digits_dashboard.on_stop()  # the button is never disabled, so it can be pressed while nothing runs
    history = digits_dashboard.set_value("epochs", 4)
    assert history.status == "completed" and history.epochs == 4


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
    assert not digits_dashboard.training


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
    assert not dash.training


def test_explorer_calls_panels_on_change():
    calls = []
    slider = widgets.float_slider("x", 0.0, -1.0, 1.0, 0.1)
    explorer = widgets.Explorer(
        {"x": slider}, [lambda e, ax: calls.append(e.values["x"])], describe=lambda e: f"x = {e.values['x']:.1f}"
    )
    explorer.set_value("x", 0.5)
    assert calls == [0.5] and "x = 0.5" in explorer.status.value


@pytest.mark.parametrize("panels", [1, 2, 3, 4])
def test_panels_sit_two_to_a_row_in_a_readable_width(panels):
    """Beside the controls on a 1366x768 screen the figure gets ~590 px: at most FIGURE_WIDTH inches (90 dpi)
    keeps its 10-point text at least 11 px high; a third panel goes to a second row."""
    explorer = widgets.Explorer({}, [lambda e, ax: None] * panels, figsize=(4.3 * panels, 3.3), render=False)
    width, height = explorer.figure.get_size_inches()
    assert width <= widgets.FIGURE_WIDTH and height == pytest.approx(3.3 * -(-panels // 2))
    explorer.figure.canvas.draw()
    boxes = [ax.get_position() for ax in explorer.axes]
    assert len({round(box.y0, 3) for box in boxes}) == -(-panels // 2)  # rows
    assert all(box.width * width > 2.5 for box in boxes)  # every panel (without its labels) over 2.5 inches wide


def test_changes_from_two_kernel_threads_draw_one_at_a_time():
    """JupyterLab can deliver widget messages on two kernel threads; two redraws at once blank the figure."""
    inside, most = [0], [0]
    guard = threading.Lock()

    def panel(explorer, ax):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for the other thread to arrive mid-draw
        ax.plot([0, explorer.values["a"]], [0, explorer.values["b"]])
        with guard:
            inside[0] -= 1

    explorer = LessonExplorer(
        lambda v: v, {"a": widgets.int_slider("a", 1, 0, 9), "b": widgets.int_slider("b", 1, 0, 9)}, [panel]
    )
    movers = [threading.Thread(target=explorer.set_value, args=(name, 5)) for name in ("a", "b")]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join()
    assert most[0] == 1 and explorer.redraws == 2
    assert explorer.result == {"a": 5, "b": 5} and bytes(explorer.image.value).startswith(b"\x89PNG")


def test_controls_are_named_and_fill_a_wide_sidebar():
    """Each control has a visible name (its accessible name too) and fills the sidebar, which is up to 440 px wide:
    a slider's track is then a couple of hundred pixels, so a short drag is a small change."""
    controls = [
        widgets.log_slider("learning rate", 1e-3, 1e-5, 10.0),
        widgets.int_slider("width", 32, 8, 128, 8),
        widgets.float_slider("dropout", 0.0, 0.0, 0.9, 0.1),
        widgets.choice_slider("batch size", (8, 16, 32)),
        widgets.dropdown("activation", ["relu", "tanh"]),
    ]
    for control in controls:
        assert control.description and control.layout.width == "calc(100% - 4px)"
        assert control.style.description_width == "130px"
    explorer = widgets.Explorer({"n": controls[1]}, [lambda ex, ax: None], render=False)
    sidebar = explorer.widget.children[0]
    assert sidebar.layout.max_width == "440px" and sidebar.layout.min_width == "340px"
    assert sidebar.layout.flex.split()[1] != "0"  # it gives way before the figure does
