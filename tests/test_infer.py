import jax
import numpy as np
import pytest

import mlkit


@pytest.fixture(scope="module")
def predictor(trained, digits):
    return mlkit.freeze(trained, digits)


def test_predictor_agrees_with_model_on_every_test_example(predictor, trained, digits):
    direct = np.asarray(mlkit.eval_view(trained)(digits.test.x))
    probs = predictor.predict_proba(digits.test.raw_x)
    np.testing.assert_array_equal(probs.argmax(1), direct.argmax(1))
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(predictor.predict(digits.test.raw_x), np.asarray(digits.labels)[direct.argmax(1)])


def test_integer_pixels_are_accepted(predictor, digits):
    raw = digits.test.raw_x[:5]
    np.testing.assert_array_equal(predictor.predict(raw.astype(np.uint8)), predictor.predict(raw))


def test_readable_labels_come_out(trained, digits):
    names = tuple(f"digit {i}" for i in range(10))
    named = mlkit.freeze(trained, digits, labels=names)
    assert named.predict(digits.test.raw_x[:3])[0].startswith("digit ")


def test_frozen_means_frozen(digits):
    model = mlkit.MLP(64, (32,), 10, dropout=0.5, batch_norm=True, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=2, progress=False))
    predictor = mlkit.freeze(model, digits)
    before = predictor.predict_proba(digits.test.raw_x)
    np.testing.assert_array_equal(before, predictor.predict_proba(digits.test.raw_x))  # no dropout noise
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=2, learning_rate=1e-2, progress=False))
    np.testing.assert_array_equal(before, predictor.predict_proba(digits.test.raw_x))  # training can't reach it


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 63)), r"shape \(n, 64\).*got 63 features"),
        (np.zeros(64), r"shape \(n, 64\).*got shape \(64,\)\. For a single example use x.reshape\(1, -1\)"),
        (np.zeros((2, 8, 8)), r"shape \(n, 64\).*got shape \(2, 8, 8\)"),
        (np.array([["a"] * 64]), r"shape \(n, 64\).*got dtype <U1"),
        (np.array([[None] * 64]), r"shape \(n, 64\).*got dtype object"),
    ],
)
def test_bad_inputs_say_what_was_expected(predictor, bad, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(bad)


def test_nan_input_names_the_rows(predictor, digits):
    x = digits.test.raw_x[:5].copy()
    x[3, 10] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\] hold NaN"):
        predictor.predict_proba(x)
    assert np.isnan(x[3, 10])  # the caller's array is untouched


def test_odd_batch_sizes_reuse_a_few_buckets(trained, digits, monkeypatch):
    predictor = mlkit.freeze(trained, digits)
    real_jit, jitted = jax.jit, []
    monkeypatch.setattr(jax, "jit", lambda fn, **kw: jitted.append(fn) or real_jit(fn, **kw))
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 300, size=40)
    for n in sizes:
        x = digits.test.raw_x[rng.integers(0, len(digits.test), n)]
        assert predictor.predict(x).shape == (n,)
    expected = {next(b for b in predictor.buckets if b >= n) for n in sizes}
    assert set(predictor._executables) == expected
    assert len(jitted) == predictor.compiles == len(expected)  # one real compilation per bucket met, no more


def test_big_batches_are_chunked_and_agree(predictor, digits):
    x = np.concatenate([digits.test.raw_x] * 4)  # 1436 rows, more than the largest bucket
    np.testing.assert_array_equal(predictor.predict(x), np.concatenate([predictor.predict(digits.test.raw_x)] * 4))
    assert predictor.predict(x[:0]).shape == (0,)


def test_freeze_needs_preprocessing(trained):
    with pytest.raises(ValueError, match="pre-processing"):
        mlkit.freeze(trained)


def test_threads_on_a_cold_predictor_compile_each_bucket_once(trained, digits):
    import threading

    predictor = mlkit.freeze(trained, digits)
    sizes = [1, 3, 4, 9, 16, 40, 64, 100, 256, 300] * 3
    errors, start = [], threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        try:
            for n in sizes[i::8] + sizes[: i + 1]:
                assert len(predictor.predict(digits.test.raw_x[:n])) == n
        except Exception as e:  # reported below, with the thread that saw it
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert predictor.compiles == 6  # buckets 1, 4, 16, 64, 256 and 1024 (for 300 rows): once each, not per thread


@pytest.mark.parametrize("value", [3e38, -3e38])
def test_inputs_that_overflow_give_an_error_naming_the_rows_not_nan(predictor, digits, value):
    x = digits.test.raw_x[:6].copy()
    x[[1, 4]] = value  # every pixel
    for answer in (predictor.predict, predictor.predict_proba):
        with pytest.raises(ValueError, match=r"Rows \[1, 4\] gave NaN or infinite outputs.*largest magnitude 3e\+38"):
            answer(x)
    fine = [0, 2, 3, 5]
    np.testing.assert_array_equal(predictor.predict(x[fine]), predictor.predict(digits.test.raw_x[fine]))


def test_masked_arrays_are_refused_rather_than_their_masks_ignored(predictor, digits):
    x = np.ma.masked_array(digits.test.raw_x[:3], mask=digits.test.raw_x[:3] > 10)
    with pytest.raises(ValueError, match=r"masked array's mask would be ignored.*x\.filled\(value\)"):
        predictor.predict(x)
    assert predictor.predict(x.filled(0)).shape == (3,)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_the_fast_path_refuses_non_finite_rows_as_validate_does(predictor, digits, value):
    x = digits.test.raw_x[:5].astype(np.float32)  # float32 rows of the right width: no conversion, guard in program
    x[2, 7] = value
    for call in (predictor.predict, predictor.predict_proba, predictor.validate):
        with pytest.raises(ValueError, match=r"Expected finite numbers; rows \[2\] hold NaN or infinity"):
            call(x)
    single = x[2:3]
    with pytest.raises(ValueError, match=r"rows \[0\] hold NaN or infinity"):
        predictor.predict(single)
    ok = predictor.predict_proba(digits.test.raw_x[:5].astype(np.float32))
    np.testing.assert_array_equal(ok, predictor.predict_proba(digits.test.raw_x[:5]))
