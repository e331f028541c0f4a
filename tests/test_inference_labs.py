"""The inference lessons' helpers and dashboards, driven the way a learner drives them: one control at a time."""

import numpy as np
import pytest

import mlkit
from mlkit.data import shifts
from mlkit.infer import compress, postprocess
from mlkit.lessons import inference as il


def png(dashboard) -> bytes:
    return bytes(dashboard.image.value)


# ---------------------------------------------------------------- post-processing helpers

PROBS = np.array([[0.1, 0.7, 0.2], [0.4, 0.35, 0.25], [0.05, 0.05, 0.9]])


def test_top_k_lists_the_likeliest_labels_first():
    assert postprocess.top_k(PROBS, ["a", "b", "c"], k=2) == [
        [("b", 0.7), ("c", 0.2)],
        [("a", 0.4), ("b", 0.35)],
        [("c", 0.9), ("a", 0.05)],
    ]
    assert postprocess.top_k(PROBS[0], "abc", k=1) == [[("b", 0.7)]]  # one row without the batch axis


def test_answer_says_unsure_below_the_threshold():
    assert postprocess.answer(PROBS, ["a", "b", "c"]).tolist() == ["b", "a", "c"]
    assert postprocess.answer(PROBS, ["a", "b", "c"], threshold=0.5).tolist() == ["b", "unsure", "c"]
    assert postprocess.answer(PROBS, [3, 5, 7], threshold=0.95).tolist() == ["unsure"] * 3


def test_coverage_counts_answers_and_judges_only_those():
    y = np.array([1, 1, 2])  # the second row is wrong
    assert postprocess.coverage(PROBS, y, 0.0) == (1.0, pytest.approx(2 / 3))
    assert postprocess.coverage(PROBS, y, 0.5) == (pytest.approx(2 / 3), 1.0)
    answered, right = postprocess.coverage(PROBS, y, 0.99)
    assert answered == 0.0 and np.isnan(right)


def test_accuracy_of_a_predictor_matches_evaluate(trained, digits):
    assert mlkit.infer.accuracy(mlkit.freeze(trained, digits), digits.test) == pytest.approx(
        mlkit.evaluate(trained, digits.test)[1], abs=1e-6
    )


def test_finetune_data_keeps_the_original_preprocessing(digits):
    small = shifts.finetune_data(digits, "thicken", 0.6, 50, seed=0)
    assert len(small.train) == 50 and np.bincount(small.train.y).min() >= 4  # stratified
    assert small.preprocessor is digits.preprocessor
    for split in (small.train, small.val, small.test):
        np.testing.assert_allclose(split.x, digits.preprocessor(split.raw_x), rtol=1e-6)
    shifted = shifts.shift(digits.test, "thicken", 0.6, image_shape=(8, 8), preprocessor=digits.preprocessor)
    np.testing.assert_array_equal(small.test.raw_x, shifted.raw_x)  # the test split is shifted, whole


def test_lean_combines_pruning_and_precision(trained, digits):
    folded = compress.lean(trained, digits)
    np.testing.assert_allclose(
        folded.predict_proba(digits.test.raw_x),
        mlkit.freeze(trained, digits).predict_proba(digits.test.raw_x),
        atol=1e-5,
    )
    both = compress.lean(trained, digits, "int8", 0.5)
    weights = [layer["w"] for layer in both.params["layers"]]
    assert all(w.dtype == np.int8 for w in weights)
    assert sum((w == 0).sum() for w in weights) >= 0.5 * sum(w.size for w in weights)
    assert both.nbytes < 0.3 * folded.nbytes
    assert compress.lean(trained, digits, "bfloat16").nbytes < 0.51 * folded.nbytes
    with pytest.raises(ValueError, match="precision"):
        compress.lean(trained, digits, "int4")


# ---------------------------------------------------------------- the dashboards


def test_confidence_lab_threshold_and_digit(trained, digits):
    lab = il.confidence_lab(trained, digits)
    lab.refresh()
    before, status = png(lab), lab.status.value
    lab.set_value("threshold", 0.99)
    assert png(lab) != before and lab.status.value != status
    answered_strict = lab.result["coverage"][0]
    lab.set_value("threshold", 0.0)
    assert lab.result["coverage"][0] == 1.0 > answered_strict and "unsure" not in lab.status.value
    lab.set_value("index", 5)
    image = lab.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(image, digits.val.raw_x[5].reshape(8, 8))  # a choice: made on validation
    assert "validation digits" in lab.status.value and "test" not in lab.status.value
    lab.set_value("inputs", il.INPUTS[2])  # standardised twice: much less accurate
    assert lab.result["curve"][0, 1] < mlkit.infer.accuracy(mlkit.freeze(trained, digits), digits.val) - 0.2


def test_latency_lab_measures_each_batch_size_once(trained, digits):
    lab = il.latency_lab(mlkit.freeze(trained, digits), digits.test.raw_x, repeats=5)
    lab.refresh()
    first, status = png(lab), lab.status.value
    assert lab.result.items == 16 and "batch 16" in status
    lab.set_value("batch", 128)
    assert lab.result.items == 128 and "batch 128" in lab.status.value and png(lab) != first
    line = lab.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [16, 128]  # points accumulate, sorted by batch size
    lab.set_value("timing", il.TIMINGS[1])
    assert len(lab.axes[1].get_lines()) == 3  # two curves and the current point


def test_lean_lab_precision_and_sparsity(trained, digits):
    lab = il.lean_lab(trained, digits)
    lab.refresh()
    first, status = png(lab), lab.status.value
    full = lab.result["row"]
    assert full.accuracy == pytest.approx(mlkit.infer.accuracy(mlkit.freeze(trained, digits), digits.val))
    lab.set_value("precision", "int8")
    assert lab.result["row"].nbytes < 0.3 * full.nbytes and png(lab) != first and lab.status.value != status
    lab.set_value("sparsity", 0.95)
    row = lab.result["row"]
    assert row.nonzero < 0.1 * row.params and row.accuracy < full.accuracy and "95% zeros" in lab.status.value
    heights = [bar.get_height() for bar in lab.axes[1].patches]
    assert heights[1] == pytest.approx(row.nbytes / 1e3) and heights[2] < heights[1]


def test_drift_lab_fine_tunes_a_copy(trained, digits):
    lab = il.drift_lab(trained, digits, threaded=False)
    weights = np.asarray(trained.head.kernel[...]).copy()
    lab.set_value("epochs", 10)
    assert len(lab.data.train) == 100 and lab.data.preprocessor is digits.preprocessor
    np.testing.assert_array_equal(trained.head.kernel[...], weights)  # the trained model itself is untouched
    before, status = png(lab), lab.status.value
    assert "thicken 0.6" in status and "fine-tuned" in status
    frozen_height, tuned_height = (bar.get_height() for bar in lab.axes[0].patches[1::2])
    assert tuned_height > frozen_height  # fine-tuning on the shifted digits helps on shifted digits
    lab.set_value("severity", 0.2)
    assert png(lab) != before and "thicken 0.2" in lab.status.value and lab.history.epochs == 10


def test_temperature_scaling_keeps_labels_and_fits_an_overconfident_model():
    from mlkit.infer.postprocess import calibration_error, fit_temperature, reliability, with_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 5)) * 3
    y = np.array([rng.choice(5, p=np.exp(row) / np.exp(row).sum()) for row in logits])  # calibrated at T = 1
    true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sharp = with_temperature(true, 1 / 3)  # the same ranking, three times too sure
    np.testing.assert_array_equal(sharp.argmax(1), true.argmax(1))
    np.testing.assert_allclose(sharp.sum(1), 1.0)
    assert fit_temperature(sharp, y) == pytest.approx(3.0, rel=0.15)
    assert fit_temperature(true, y) == pytest.approx(1.0, rel=0.15)
    assert calibration_error(with_temperature(sharp, 3.0), y) < calibration_error(sharp, y) / 2
    confidence, accuracy, counts = reliability(true, y)
    assert counts.sum() == 2000 and np.nanmax(np.abs(confidence - accuracy)[counts > 100]) < 0.06


@pytest.mark.parametrize(
    "scores, said",
    [
        ({"frozen original": 0.97, "frozen shifted": 0.40, "tuned shifted": 0.87}, " (recovers 82% of the drop)"),
        ({"frozen original": 0.97, "frozen shifted": 0.30, "tuned shifted": 0.20}, " (worse than not fine-tuning)"),
        (
            {"frozen original": 0.97, "frozen shifted": 0.097, "tuned shifted": 0.008},
            " (worse than not fine-tuning, below chance (10%): systematically wrong)",
        ),
        ({"frozen original": 0.97, "frozen shifted": 0.98, "tuned shifted": 0.99}, ""),
    ],
)
def test_drift_lab_says_what_fine_tuning_did_even_when_it_hurt(scores, said):
    assert il._recovery(scores, 0.1) == said
