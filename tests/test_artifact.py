import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlkit
from mlkit.infer import artifact


@pytest.fixture(scope="module")
def predictor(trained, digits):
    return mlkit.freeze(trained, digits)


@pytest.fixture(scope="module")
def saved(predictor, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifacts") / "digits-mlp"
    mlkit.save_predictor(predictor, path)
    return path


@pytest.fixture
def copy(saved, tmp_path):
    """A private copy of the saved artifact that a test may damage."""
    return shutil.copytree(saved, tmp_path / "copy")


FRESH_PROCESS = """
import json, sys
from pathlib import Path
import jax
import numpy as np

# The artifact alone, read with jax and numpy: no mlkit, no flax, no model class.
folder, x = Path(sys.argv[1]), np.load(sys.argv[2])
labels = json.loads((folder / "metadata.json").read_text())["labels"]
function = jax.export.deserialize(bytearray((folder / "function.jaxexport").read_bytes()))
plain = np.asarray(function.call(x))
assert "mlkit" not in sys.modules and "flax" not in sys.modules, "running the artifact needed mlkit or flax"

# The same artifact through mlkit.load_predictor, as a deployed service would load it.
from mlkit import load_predictor

predictor = load_predictor(folder)
np.save(sys.argv[3], predictor.predict_proba(x))
assert np.array_equal(plain.argmax(1), predictor.predict_proba(x).argmax(1))
print(" ".join(str(labels[i]) for i in plain.argmax(1)))
"""


def test_round_trip_in_a_fresh_process_and_with_jax_alone(saved, predictor, digits, tmp_path):
    np.save(tmp_path / "x.npy", digits.test.raw_x)
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(saved), str(tmp_path / "x.npy"), str(tmp_path / "probs.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    expected = predictor.predict(digits.test.raw_x)
    assert done.stdout.split() == [str(label) for label in expected]
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), predictor.predict_proba(digits.test.raw_x), atol=1e-6)


def test_metadata_describes_the_function(saved, predictor, trained, digits):
    meta = artifact.read_metadata(saved)
    assert meta["input"] == {"shape": ["b", 64], "dtype": "float32"}
    assert meta["output"]["shape"] == ["b", 10]
    assert meta["labels"] == list(range(10)) and meta["task"] == "classification"
    assert meta["versions"]["jax"] and meta["versions"]["mlkit"] == mlkit.__version__
    np.testing.assert_array_equal(meta["preprocessor"]["mean"], digits.preprocessor.mean)
    # float32 weights and biases plus the pre-processing's mean and scale
    assert meta["param_bytes"] == 4 * (mlkit.count_params(trained) + 2 * digits.num_features)
    assert sorted(p.name for p in saved.iterdir()) == [artifact.PAYLOAD, artifact.METADATA]


def test_loaded_artifact_keeps_validation_and_does_not_recompile_for_odd_batches(saved, digits):
    loaded = mlkit.load_predictor(saved)
    assert loaded.labels == tuple(range(10)) and loaded.buckets == mlkit.infer.BUCKETS
    with pytest.raises(ValueError, match=r"got 63 features"):
        loaded.predict(np.zeros((2, 63)))
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 300, size=25)
    for n in sizes:
        assert loaded.predict(digits.test.raw_x[rng.integers(0, len(digits.test), n)]).shape == (n,)
    expected = {next(b for b in loaded.buckets if b >= n) for n in sizes}
    assert set(loaded._executables) == expected and loaded.compiles == len(expected)


def test_string_labels_and_regression_survive(trained, digits, tmp_path):
    names = tuple(np.array([f"digit {i}" for i in range(10)]))  # numpy strings, as np.unique gives them
    named = mlkit.freeze(trained, digits, labels=names)
    mlkit.save_predictor(named, tmp_path / "named")
    loaded = mlkit.load_predictor(tmp_path / "named")
    assert all(type(label) is str for label in loaded.labels)
    np.testing.assert_array_equal(loaded.predict(digits.test.raw_x), named.predict(digits.test.raw_x))

    w = np.array([[1.0], [2.0], [3.0]], np.float32)
    line = mlkit.Predictor(lambda x: x @ w, 3, task="regression")
    mlkit.save_predictor(line, tmp_path / "line")
    back = mlkit.load_predictor(tmp_path / "line")
    assert back.task == "regression" and back.preprocessor is None
    np.testing.assert_allclose(back.predict(np.ones((5, 3))), 6.0)


def test_convnet_exports_with_a_symbolic_batch(digits, tmp_path):
    predictor = mlkit.freeze(mlkit.ConvNet((8, 8), 10, channels=(4, 8), seed=0), digits)
    mlkit.save_predictor(predictor, tmp_path / "conv")
    loaded = mlkit.load_predictor(tmp_path / "conv")
    x = digits.test.raw_x[:7]
    np.testing.assert_allclose(loaded.predict_proba(x), predictor.predict_proba(x), atol=1e-6)


def test_altered_payload_is_refused(copy):
    payload = bytearray((copy / artifact.PAYLOAD).read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (copy / artifact.PAYLOAD).write_bytes(payload)
    with pytest.raises(ValueError, match=rf"{copy}.*has been altered: sha256"):
        mlkit.load_predictor(copy)


def test_truncated_payload_is_refused(copy):
    payload = (copy / artifact.PAYLOAD).read_bytes()
    (copy / artifact.PAYLOAD).write_bytes(payload[:1000])
    with pytest.raises(ValueError, match=rf"{copy}.*is 1000 bytes, expected {len(payload)}: the artifact is truncated"):
        mlkit.load_predictor(copy)


@pytest.mark.parametrize(
    "metadata, message",
    [
        (b"\x89PNG not json", r"metadata.json is not valid JSON"),
        (b'{"name": "resnet50"}', r'not mlkit predictor metadata: expected "format": "mlkit.predictor", got None'),
        (b"[1, 2, 3]", r"not mlkit predictor metadata.*got 'list'"),
        (b'{"format": "mlkit.predictor", "task": "classification"}', r"lacks the keys \['format_version', 'labels'"),
        (None, r"is not a predictor artifact: it has no metadata.json"),
        ("labels", r"malformed: 3 labels for 10 outputs"),
        ("preprocessor", r'malformed: "preprocessor" should be null or hold "mean" and "scale" lists of 64 numbers'),
    ],
)
def test_foreign_or_broken_metadata_is_refused(copy, metadata, message):
    if metadata is None:
        (copy / artifact.METADATA).unlink()
    elif isinstance(metadata, str):  # one field of our own metadata spoiled
        meta = json.loads((copy / artifact.METADATA).read_text())
        meta[metadata] = {"labels": ["a", "b", "c"], "preprocessor": {"mean": [0.0]}}[metadata]
        (copy / artifact.METADATA).write_text(json.dumps(meta))
    else:
        (copy / artifact.METADATA).write_bytes(metadata)
    with pytest.raises(ValueError, match=message) as error:
        mlkit.load_predictor(copy)
    assert str(copy) in str(error.value)


def test_missing_path_and_plain_file_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No predictor artifact at .*nowhere.*mlkit.save_predictor"):
        mlkit.load_predictor(tmp_path / "nowhere")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match=r"model.pkl is a file, not a predictor artifact"):
        mlkit.load_predictor(tmp_path / "model.pkl")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("serialization", 999, r"jax.export serialization version 999.*Re-export it.*python -m mlkit train .* --out"),
        ("calling_convention", 999, r"calling convention 999.*mlkit.save_predictor"),
    ],
)
def test_artifact_from_an_incompatible_jax_says_how_to_re_export(copy, key, value, message):
    meta = json.loads((copy / artifact.METADATA).read_text())
    meta["versions"].update({key: value, "jax": "9.0.0"})
    (copy / artifact.METADATA).write_text(json.dumps(meta))  # the checksum covers the payload, not the metadata
    with pytest.raises(ValueError, match=message):
        mlkit.load_predictor(copy)


def test_newer_artifact_format_is_refused(copy):
    meta = json.loads((copy / artifact.METADATA).read_text())
    meta["format_version"] = 99
    (copy / artifact.METADATA).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format 99.*Upgrade mlkit"):
        mlkit.load_predictor(copy)


def test_a_crash_mid_save_leaves_the_old_artifact_intact(trained, digits, copy, monkeypatch):
    before = mlkit.load_predictor(copy).predict(digits.test.raw_x[:20])
    real_write = artifact._write

    def crash(file, data):
        if file.name == artifact.PAYLOAD:
            file.write_bytes(data[: len(data) // 2])
            raise OSError("No space left on device")
        real_write(file, data)

    monkeypatch.setattr(artifact, "_write", crash)
    renamed = mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)])
    for target in (copy, copy.parent / "fresh"):
        with pytest.raises(OSError, match="No space"):
            mlkit.save_predictor(renamed, target)
    np.testing.assert_array_equal(mlkit.load_predictor(copy).predict(digits.test.raw_x[:20]), before)
    assert not (copy.parent / "fresh").exists()
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy"]  # no half-written staging directory left


def test_a_crash_while_renaming_leaves_the_old_artifact_intact(trained, digits, copy, monkeypatch):
    before = mlkit.load_predictor(copy).predict(digits.test.raw_x[:20])
    real_replace = os.replace

    def power_cut(src, dst):
        if ".saving-" in Path(src).name:  # the moment the new artifact would take the old one's name
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(artifact.os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        mlkit.save_predictor(mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)]), copy)
    monkeypatch.undo()
    np.testing.assert_array_equal(mlkit.load_predictor(copy).predict(digits.test.raw_x[:20]), before)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy"]


def test_saving_over_an_artifact_replaces_it_but_never_a_foreign_directory(trained, digits, copy, tmp_path):
    mlkit.save_predictor(mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)]), copy)
    assert mlkit.load_predictor(copy).labels[0] == "d0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ValueError, match=r"Refusing to save over .*photos"):
        mlkit.save_predictor(mlkit.freeze(trained, digits), precious)
    assert (precious / "cat.jpg").read_bytes() == b"meow"
