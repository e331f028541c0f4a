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


# ---------------------------------------------------------------- every dashboard's figure can be read


def _fake_point(rate: float, max_batch: int, p50: float, p99: float, rows_per_call: float):
    from mlkit.lessons import serving
    from mlkit.serve import LoadResult

    ok = int(rate)
    latency = np.r_[np.full(ok - ok // 50 - 1, p50), np.full(ok // 50 + 1, p99)]
    zeros = latency * 0
    result = LoadResult("http://127.0.0.1:1", "open", rate, 1, 1.0, ok, ok, {}, latency, zeros, zeros, zeros + 1, zeros)
    return serving.Point(rate, max_batch, 2.0, result, serving.Counts(max(1, int(ok / rows_per_call)), ok, {}, {}))


def _serving_figure(settings: int):
    """Lesson 13's two panels after the lesson's sweeps and (``settings`` > 2) more max batches tried."""
    from matplotlib.figure import Figure

    from mlkit.lessons import serving

    sweeps = {
        "no batching": [_fake_point(r, 1, p, 2 * p, 1) for r, p in ((25, 16), (50, 17), (100, 900))],
        "max batch 32": [
            _fake_point(r, 32, 17 + r / 200, 20 + r / 100, min(32, max(1, r * 0.015)))
            for r in (25, 50, 100, 200, 400, 800, 1600, 3200)
        ],
        "max batch 2": [_fake_point(r, 2, 16 + r / 50, 20 + r / 20, min(2, r * 0.015)) for r in (25, 100, 200)],
        "max batch 4": [_fake_point(r, 4, 16 + r / 50, 20 + r / 20, min(4, r * 0.015)) for r in (100, 200, 400)],
    }
    curves = dict(list(sweeps.items())[:settings])
    figure = Figure(figsize=(7.2, 3.6), layout="constrained")
    axes = figure.subplots(1, 2)
    serving.latency_panel(axes[0], curves, model_ms=15, current=curves["max batch 32"][3])
    serving.batch_panel(axes[1], curves, model_ms=15, current=curves["max batch 32"][3])
    return figure


def _dashboards(digits):
    """Every lesson dashboard as Run All leaves it (shorter runs where the figure does not depend on length)."""
    from mlkit.infer.text import freeze_text
    from mlkit.lessons import explorers, text, vision
    from mlkit.lessons import inference as il

    for name, ex in (
        ("02 architecture", explorers.architecture_explorer(digits, render=False)),
        ("03 loss", explorers.loss_explorer(render=False)),
        ("04 descent", explorers.descent_explorer(render=False)),
    ):
        ex.refresh()
        yield name, ex.figure
    play = training.playground(render=False, threaded=False)
    play.controls["epochs"].value = 40
    play.set_value("dataset", "spirals")  # a narrow log loss axis
    yield "05 playground, spirals", play.figure
    lab = training.digits_lab(digits, render=False, threaded=False)
    lab.controls["epochs"].value = 5
    lab.train()
    yield "00 digits lab", lab.figure
    lab = training.overfitting_lab(digits, render=False, threaded=False)
    lab.controls["epochs"].value = 30
    lab.train()
    yield "06 overfitting lab", lab.figure
    lab = training.capacity_lab(render=False, threaded=False)
    lab.train()  # the full 3000 epochs: the x axis to 3000 and a loss curve across the whole panel
    yield "06 capacity lab", lab.figure
    model = mlkit.MLP(digits.num_features, (64,), digits.num_classes, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=5, progress=False))
    latency = il.latency_lab(mlkit.freeze(model, digits), digits.test.raw_x, repeats=5, render=False)
    for batch in (16, 1, 1024):
        latency.set_value("batch", batch)
    yield "09 latency lab", latency.figure
    for name, lab in (("08 confidence lab", il.confidence_lab(model, digits, render=False)),
                      ("10 lean lab", il.lean_lab(model, digits, render=False))):  # fmt: skip
        lab.refresh()
        yield name, lab.figure
    drift = il.drift_lab(model, digits, threaded=False, render=False)
    drift.refresh()
    yield "11 drift lab", drift.figure
    yield "13 serving lab, the lesson's curves", _serving_figure(2)
    yield "13 serving lab, four settings", _serving_figure(4)
    mnist = mlkit.load_dataset("mnist5k", seed=0)
    conv = vision.conv_lab(mnist, threaded=False, render=False)
    conv.controls["epochs"].value, conv.controls["train_size"].value = 1, 300
    conv.train()
    yield "14 conv lab", conv.figure
    reviews = mlkit.load_dataset("reviews", seed=0)
    words = text.text_lab(reviews, threaded=False, render=False)
    words.controls["epochs"].value = 3
    words.train()
    yield "15 text lab", words.figure
    actions = {"negative": "refund", "positive": "thanks", "unsure": "a person"}
    router = text.message_lab(freeze_text(words.model, words.data), actions, message="broken", render=False)
    router.refresh()
    yield "15 router", router.figure
    router.set_value("message", "!!!")  # no words: the figure says what the status line says
    assert [t.get_text().replace("\n", " ") for t in router.axes[0].texts] == [router.result["error"]]
    yield "15 router, no words", router.figure


def test_every_dashboard_figure_has_no_overlapping_text_and_no_legend_on_the_data(digits):
    from mlkit.lessons import plots

    problems = {name: found for name, figure in _dashboards(digits) if (found := plots.collisions(figure))}
    assert problems == {}


def test_the_reliability_diagram_keeps_its_counts_and_legend_off_the_markers_and_bars():
    from matplotlib.figure import Figure

    from mlkit.lessons import plots
    from mlkit.lessons.inference import reliability_diagram

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), 300)
    y = np.where(rng.random(300) < 0.7, probs.argmax(1), rng.integers(0, 10, 300))
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    reliability_diagram(probs, y, axes[0], "as trained")
    reliability_diagram(probs**0.5 / (probs**0.5).sum(1, keepdims=True), y, axes[1], "softer", legend=False)
    assert plots.collisions(figure) == []


def test_collisions_sees_overlapping_labels_and_a_legend_on_the_data():
    """The check above can fail: crowded ticks, two notes on one spot and a legend over points are all found."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator

    from mlkit.lessons import plots

    figure = Figure(figsize=(3, 2), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(np.arange(10), np.arange(10), "o", label="points")
    ax.xaxis.set_major_locator(FixedLocator(np.arange(0, 10, 0.5)))  # 20 ticks on 3 inches
    ax.annotate("one note", (5, 5))
    ax.annotate("another note", (5, 5))
    ax.legend(loc="center")
    found = "\n".join(plots.collisions(figure))
    assert "x tick" in found and "'one note' overlaps" in found and "legend covers" in found


@pytest.mark.parametrize(("low", "high"), [(0.69, 0.75), (0.23, 1.3), (3e-3, 2.0), (25, 4800), (1e-6, 1e4), (30, 45)])
def test_log_axes_are_labelled_with_plain_numbers_that_fit(low, high):
    from matplotlib.figure import Figure

    from mlkit.lessons import plots

    figure = Figure(figsize=(3.6, 2.8), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([low, high], [low, high])
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high))
    plots.readable(ax)
    assert plots.collisions(figure, data=False) == []
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
        assert len(labels) >= 2 and not any("10^" in t or "×" in t or "$" in t for t in labels), labels


def test_plain_numbers():
    from mlkit.lessons.plots import plain_number

    assert [plain_number(v) for v in (0, 0.5, 1, 2.0, 20, 1600, 20_000, 1e-5, 3e9)] == [
        "0", "0.5", "1", "2", "20", "1600", "20,000", "1e-5", "3e9",
    ]  # fmt: skip


def test_a_run_with_nothing_to_draw_says_why_in_the_figure(digits):
    lab = training.digits_lab(digits, render=False, threaded=False)
    lab.controls["epochs"].value = 3
    history = lab.set_value("learning_rate", 10.0)
    assert history.status == "diverged" and history.epochs == 0  # nothing kept: no curve to draw
    for ax in lab.axes:
        assert [t.get_text().replace("\n", " ") for t in ax.texts] == [history.message]
        assert list(ax.get_xticks()) == list(ax.get_yticks()) == []  # no 0-1 scale of nothing
