import shutil

import numpy as np
import pytest

import mlkit
from mlkit.data import shipped, toys


def test_digits_load_with_stratified_splits(digits):
    assert digits.num_features == 64 and digits.num_classes == 10
    assert digits.labels == tuple(range(10)) and digits.image_shape == (8, 8)
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == 1797
    assert digits.train.raw_x.max() == 16 and digits.train.raw_x.min() == 0
    # Stratified: every class holds (about) its overall share in every split.
    for split in (digits.train, digits.val, digits.test):
        share = np.bincount(split.y, minlength=10) / len(split)
        assert np.all(np.abs(share - 0.1) < 0.01)


def test_preprocessing_is_fitted_on_train_only(digits):
    pre = digits.preprocessor
    np.testing.assert_allclose(pre.mean, digits.train.raw_x.mean(0), rtol=1e-5, atol=1e-5)
    everything = np.concatenate([digits.train.raw_x, digits.val.raw_x, digits.test.raw_x])
    assert not np.allclose(pre.mean, everything.mean(0))
    np.testing.assert_allclose(digits.test.x, (digits.test.raw_x - pre.mean) / pre.scale, rtol=1e-6)
    assert np.all(pre.scale > 0)


def test_mnist5k_loads():
    data = mlkit.load_dataset("mnist5k", seed=0)
    assert data.num_features == 784 and data.image_shape == (28, 28)
    assert len(data.train) + len(data.val) + len(data.test) == 5000


def test_altered_data_file_is_refused(tmp_path, monkeypatch):
    shutil.copy(shipped.SETS_DIR / "digits.npz", tmp_path / "digits.npz")
    with open(tmp_path / "digits.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    monkeypatch.setenv("MLKIT_DATASETS", str(tmp_path))
    with pytest.raises(ValueError, match=r"has been altered.*sha256.*[Rr]einstall the kit"):
        mlkit.load_dataset("digits")


def test_missing_data_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"missing.*digits\.npz"):
        mlkit.load_dataset("digits")


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"Unknown data set 'digitz'.*moons"):
        mlkit.load_dataset("digitz")


@pytest.mark.parametrize("name", ["moons", "circles", "spirals", "xor", "blobs"])
def test_toys_are_seeded_2d_classification(name):
    a = mlkit.load_dataset(name, seed=3, n=200, noise=0.1)
    b = mlkit.load_dataset(name, seed=3, n=200, noise=0.1)
    c = mlkit.load_dataset(name, seed=4, n=200, noise=0.1)
    assert a.num_features == 2 and a.task == "classification" and a.num_classes >= 2
    np.testing.assert_array_equal(a.train.raw_x, b.train.raw_x)
    assert not np.array_equal(a.train.raw_x, c.train.raw_x)


def test_regression_curve_is_a_regression_task():
    data = mlkit.load_dataset("regression_curve", n=60, noise=0.1, seed=0)
    assert data.task == "regression" and data.num_classes == 1 and data.labels == ()
    x, y = toys.regression_curve(n=500, noise=0.0)
    np.testing.assert_allclose(y, toys.true_curve(x[:, 0]))


def test_own_csv_with_header_and_named_label(tmp_path):
    path = tmp_path / "flowers.csv"
    rows = ["kind,petal,sepal"] + [f"{'ab'[i % 2]},{i},{i * 2}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    data = mlkit.load_dataset(path, label="kind")
    assert data.labels == ("a", "b") and data.num_features == 2 and data.name == "flowers"
    assert len(data.train) + len(data.val) + len(data.test) == 40


def test_own_csv_without_header_uses_last_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(f"{i},{i % 3}" for i in range(30)))
    data = mlkit.load_dataset(path)
    assert data.num_features == 1 and data.labels == (0, 1, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,label\n1,2,0\n3,4\n", "line 3: 2 fields, expected 3"),
        ("a,b,label\n1,x,0\n3,4,1\n", r"line 2, column 2 \('b'\): 'x' is not a number"),
        ("", "is empty"),
        ("a,b,label\n1,,0\n", "'' is not a number"),
    ],
)
def test_malformed_csv_says_where(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        mlkit.load_dataset(path)


def test_csv_label_name_must_exist(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,0\n2,1\n")
    with pytest.raises(ValueError, match=r"No column named 'kind'.*\['a', 'b'\]"):
        mlkit.load_dataset(path, label="kind")


def test_own_npz_and_foreign_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.arange(60.0).reshape(30, 2), y=np.arange(30) % 2)
    assert mlkit.load_dataset(good).num_features == 2
    wrong_keys = tmp_path / "keys.npz"
    np.savez(wrong_keys, features=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="expected 'x'"):
        mlkit.load_dataset(wrong_keys)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match=r"pickled\.npz: x has dtype object: it holds Python objects"):
        mlkit.load_dataset(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:150])
    for bad in (garbage, truncated):
        with pytest.raises(ValueError, match=r"not a readable \.npz"):
            mlkit.load_dataset(bad)


def test_batches_cover_every_example_once():
    x, y = np.arange(10)[:, None], np.arange(10)
    seen = np.concatenate([yb for _, yb in mlkit.data.batches(x, y, 4, seed=1)])
    assert sorted(seen) == list(range(10)) and len(list(mlkit.data.batches(x, y, 4))) == 3


def test_with_train_size_is_exact_stratified_and_refits(digits):
    small = mlkit.data.with_train_size(digits, 100, seed=0)
    assert len(small.train) == 100 and np.all(np.bincount(small.train.y) == 10)
    assert small.val is not digits.val and np.array_equal(small.val.raw_x, digits.val.raw_x)
    np.testing.assert_allclose(small.preprocessor.mean, small.train.raw_x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small.val.x, small.preprocessor(small.val.raw_x), rtol=1e-6)
    with pytest.raises(ValueError, match="between 1 and"):
        mlkit.data.with_train_size(digits, 0)


def test_with_train_checks_the_feature_count(digits):
    with pytest.raises(ValueError, match="64 features"):
        mlkit.data.with_train(digits, np.zeros((5, 63)), np.zeros(5))


def test_scale_floor_only_for_pixels():
    # Pixels share a unit, so a near-blank pixel's scale is floored; features in different units are not.
    x = np.stack([np.linspace(0, 1000, 50), np.linspace(0, 1, 50)], 1)
    table = mlkit.make_dataset(x, np.arange(50) % 2)
    assert table.preprocessor.floor == 0 and table.preprocessor.scale[1] < 1
    images = mlkit.make_dataset(x, np.arange(50) % 2, image_shape=(1, 2))
    assert images.preprocessor.scale[1] == pytest.approx(0.1 * images.preprocessor.scale[0])


def test_one_class_is_refused():
    with pytest.raises(ValueError, match=r"Data set 'arrays' holds one class \('a'\); a classifier needs .* two"):
        mlkit.make_dataset(np.zeros((30, 2)), np.array(["a"] * 30))


def test_classes_missing_from_a_split_are_named():
    y = np.array([0] * 40 + [1] * 40 + [2] * 2)
    with pytest.raises(
        ValueError, match=r"1 of 3 classes are too small .*: 2 \(2 examples\)\. .* at least 4 examples\. Use a larger"
    ):
        mlkit.make_dataset(np.zeros((82, 2)), y)
    assert len(mlkit.make_dataset(np.zeros((82, 2)), y, val_fraction=0, test_fraction=0.4).test) == 33
    with pytest.raises(ValueError, match=r"10000 of 10000 classes .*: 0 \(1 example\), .* and 9995 more"):
        mlkit.make_dataset(np.zeros((10_000, 2)), np.arange(10_000))
    with pytest.raises(ValueError, match=r"has 3 examples, too few .* it needs at least 4"):
        mlkit.make_dataset(np.zeros((3, 2)), np.array([0.5, 1.5, 2.25]))


def test_nan_target_is_refused_not_a_regression_or_a_class():
    y = np.linspace(0, 1, 50)
    y[7] = np.nan
    with pytest.raises(ValueError, match=r"y\[7\] = nan is NaN or infinite"):
        mlkit.make_dataset(np.zeros((50, 2)), y)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((30, 2)), np.zeros((30, 3)), r"y has shape \(30, 3\); .*y\.argmax\(1\)"),
        (np.ones((30, 2)) * 1j, np.arange(30) % 2, "x has dtype complex128"),
        (np.zeros((30, 2)), np.arange(29) % 2, "x has 30 rows but y has 29"),
    ],
)
def test_arrays_that_cannot_be_a_data_set(x, y, message):
    with pytest.raises(ValueError, match=message):
        mlkit.make_dataset(x, y)


@pytest.mark.parametrize("image_shape", [None, (8, 8)])
def test_a_value_whose_square_passes_float32_is_refused_naming_the_range(digits, image_shape):
    x = np.concatenate([digits.train.raw_x, digits.val.raw_x, digits.test.raw_x])
    y = np.concatenate([digits.train.y, digits.val.y, digits.test.y])
    x[5, 10] = 1e30  # finite in float32, but its square is not: every scale became NaN or infinite
    with pytest.raises(ValueError, match=r"Feature 10 cannot be standardised: it holds 1e\+30 .*float32.*3\.4e\+38"):
        mlkit.make_dataset(x, y, seed=0, image_shape=image_shape)


def test_a_float64_value_beyond_float32_is_refused_naming_the_cell():
    x = np.random.default_rng(0).random((100, 3))
    x[4, 1] = 1e39
    with pytest.raises(ValueError, match=r"x\[4, 1\] = 1e\+39 is beyond the range of float32"):
        mlkit.make_dataset(x, np.arange(100) % 2)
