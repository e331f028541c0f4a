"""The ready-made lesson dashboards, driven the way a learner drives them: one control at a time."""

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

import mlkit
from mlkit.lessons import training


def png(dashboard):
    return bytes(dashboard.image.value)


def test_playground_redraws_the_boundary_for_a_new_data_set():
    play = training.playground()
    play.set_value("epochs", 10)
    assert play.data.name == "moons" and play.history.epochs == 10
    before = png(play)
    points_before = play.axes[0].collections[-1].get_offsets().copy()  # the scattered training points
    play.set_value("dataset", "circles")
    assert play.data.name == "circles" and play.axes[0].get_title() == "decision boundary"
    assert not np.array_equal(play.axes[0].collections[-1].get_offsets(), points_before)
    assert png(play) != before and "epoch 10/10" in play.status_text


def test_digits_lab_learning_rate_and_width(digits):
    lab = training.digits_lab(digits)
    lab.set_value("epochs", 3)
    first = lab.history
    lab.set_value("learning_rate", 1e-2)
    assert lab.history.compile_time == 0 and lab.history.val_loss != first.val_loss
    lab.set_value("width", 16)
    assert mlkit.count_params(lab.model) == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10


def test_overfitting_lab_train_size_slider_changes_the_data(digits):
    lab = training.overfitting_lab(digits)
    lab.set_value("epochs", 10)
    assert len(lab.data.train) == 100
    small_curve = png(lab)
    lab.set_value("train_size", 300)
    assert len(lab.data.train) == 300 and png(lab) != small_curve
    lab.set_value("dropout", 0.5)
    assert lab.model.dropout is not None and lab.history.epochs == 10


def test_capacity_lab_draws_the_fit():
    lab = training.capacity_lab()
    lab.set_value("epochs", 100)
    fit_axes = lab.axes[0]
    model_line = next(line for line in fit_axes.get_lines() if line.get_label() == "model")
    before = np.asarray(model_line.get_ydata()).copy()
    lab.set_value("width", 16)
    after = next(line for line in lab.axes[0].get_lines() if line.get_label() == "model").get_ydata()
    assert not np.allclose(before, after) and "val loss" in lab.status.value and lab.data.task == "regression"


def test_playground_defaults_show_what_capacity_buys_on_the_spirals():
    play = training.playground(render=False)
    play.set_value("dataset", "spirals")
    deep = play.history.val_acc[-1]
    play.set_value("width", 4)
    play.set_value("depth", 1)
    assert deep > 0.8 and play.history.val_acc[-1] < 0.65, (deep, play.history.val_acc[-1])


def test_capacity_lab_starts_overfitting_and_a_single_unit_underfits():
    noise_variance = 0.25**2  # the curve's noise: a model closer than this to the training points fits the noise
    lab = training.capacity_lab(render=False)
    history = lab.train()
    assert len(lab.data.train) == 16 and len(lab.data.val) == 74
    assert history.status == "completed" and history.train_loss[-1] < noise_variance / 4
    assert history.val_loss[-1] > 2 * min(history.val_loss) and history.best_epoch < 500
    lab.set_value("width", 1)
    assert lab.history.train_loss[-1] > noise_variance


def test_augmented_digits_adds_shifted_and_turned_copies_and_keeps_val_and_test(digits):
    small = mlkit.data.with_train_size(digits, 50, seed=0)
    more = training.augmented_digits(small, copies=2)
    assert len(more.train) == 5 * 50 and np.array_equal(more.train.y, np.tile(small.train.y, 5))
    np.testing.assert_array_equal(more.train.raw_x[:50], small.train.raw_x)
    assert not np.allclose(more.train.raw_x[50:100], small.train.raw_x)
    np.testing.assert_array_equal(more.val.raw_x, small.val.raw_x)
    np.testing.assert_array_equal(more.test.y, small.test.y)
    with pytest.raises(ValueError, match="needs an image set"):
        training.augmented_digits(mlkit.load_dataset("moons", n=100))


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
MOVES = (".set_value(", ".controls[", ".train(", ".refresh(", ".on_change(", ".on_train(", ".on_stop(")


@pytest.mark.parametrize(
    "notebook", ["00_tour", "01_data", "02_forward_pass", "03_loss", "04_backprop", "05_training_loop",
                 "06_overfitting", "07_tuning", "09_latency", "10_lean_models", "11_adaptability"],
)  # fmt: skip
def test_after_run_all_a_shown_dashboard_keeps_the_state_its_cell_made(notebook):
    """A cell that shows a dashboard (its last line names it) is the last to move it: a check cell below works
    on a copy, so after Run All the dashboard shows what the text describes, not what a check left."""
    notebook_cells = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4).cells
    cells = [c.source for c in notebook_cells if c.cell_type == "code"]
    shown = 0
    for i, source in enumerate(cells):
        name = source.strip().splitlines()[-1].strip() if source.strip() else ""
        if not name.isidentifier():
            continue
        shown += 1
        for later in cells[i + 1 :]:
            moved = [move for move in MOVES if re.search(rf"(?<![\w.]){name}{re.escape(move)}", later)]
            assert not moved, f"{notebook}: {name}, shown above, is changed by a later cell:\n{later}"
    assert shown
