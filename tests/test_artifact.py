import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlkit
from mlkit import storage
from mlkit.infer import artifact, verify
from mlkit.serve.model import load_for
from mlkit.serve.settings import Settings

KEY = b"0123456789abcdef-a-test-key"


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


def forge(folder: Path, *, metadata=None, payload: bytes | None = None) -> Path:
    """Rewrite files of the artifact and its manifest to match, as anyone who can edit the folder can: unsigned."""
    if isinstance(metadata, dict):
        metadata = json.dumps(metadata).encode()
    if metadata is not None:
        (folder / artifact.METADATA).write_bytes(metadata)
    if payload is not None:
        (folder / artifact.PAYLOAD).write_bytes(payload)
    files = {}
    for name in (artifact.METADATA, artifact.PAYLOAD):
        data = (folder / name).read_bytes()
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / artifact.MANIFEST).write_text(json.dumps({"format": artifact.MANIFEST_FORMAT, "files": files}))
    (folder / artifact.SIGNATURE).unlink(missing_ok=True)
    return folder


def meta_of(folder: Path) -> dict:
    return json.loads((folder / artifact.METADATA).read_text())


def export(fn, shape, platforms=("cpu",)) -> bytes:
    return bytes(
        jax.export.export(jax.jit(fn), platforms=platforms)(jax.ShapeDtypeStruct(shape, jnp.float32)).serialize()
    )


def symbolic(features: int) -> tuple:
    return (*jax.export.symbolic_shape("b"), features)


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
    np.testing.assert_allclose(meta["check"]["outputs"], predictor.predict_proba(artifact.check_rows(meta)), atol=1e-6)
    names = [artifact.PAYLOAD, artifact.MANIFEST, artifact.SIGNATURE, artifact.METADATA]
    assert sorted(p.name for p in saved.iterdir()) == names
    manifest = json.loads((saved / artifact.MANIFEST).read_text())
    assert (
        manifest["files"][artifact.METADATA]["sha256"]
        == hashlib.sha256(saved.joinpath("metadata.json").read_bytes()).hexdigest()
    )


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


# --- what the manifest and the validation refuse ------------------------------------------------------------------


def test_altered_payload_is_refused(copy):
    payload = bytearray((copy / artifact.PAYLOAD).read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (copy / artifact.PAYLOAD).write_bytes(payload)
    with pytest.raises(ValueError, match=rf"{copy}.*has been altered: sha256"):
        mlkit.load_predictor(copy)


def test_truncated_payload_is_refused(copy):
    payload = (copy / artifact.PAYLOAD).read_bytes()
    (copy / artifact.PAYLOAD).write_bytes(payload[:1000])
    with pytest.raises(ValueError, match=rf"{copy}.*is 1000 bytes, expected {len(payload)} .*manifest.*truncated"):
        mlkit.load_predictor(copy)


def test_the_manifest_covers_the_metadata_too(copy):
    meta = meta_of(copy)
    meta["labels"] = meta["labels"][::-1]  # the same keys, types and size: only a checksum can tell
    (copy / artifact.METADATA).write_text(json.dumps(meta, indent=2))
    with pytest.raises(ValueError, match=r"metadata.json has been altered: sha256 .* \(recorded in manifest.json\)"):
        mlkit.load_predictor(copy)


def spoil(meta: dict, case: str) -> dict | bytes:
    """``meta`` with one thing wrong, by name."""
    if case == "duplicate key":
        return (
            json.dumps(meta)
            .replace('"task": "classification"', '"task": "classification", "task": "regression"')
            .encode()
        )
    if case == "deep":
        return ("[" * 1000 + "]" * 1000).encode()
    if case == "NaN label":
        meta["labels"][3] = float("nan")
        return json.dumps(meta).encode()  # Python writes NaN, which is not JSON
    changes = {
        "all labels cat": ("labels", ["cat"] * 10),
        "3 labels": ("labels", ["a", "b", "c"]),
        "mixed labels": ("labels", [*range(9), "9"]),
        "regression": ("task", "regression"),
        "huge bucket": ("buckets", [100_000_000]),
        "unsorted buckets": ("buckets", [64, 4]),
        "platforms as text": ("platforms", "cpu"),
        "a platform nobody knows": ("platforms", ["xcpux"]),
        "an unknown key": ("pickle", "cos\nsystem"),
        "preprocessor": ("preprocessor", {"mean": [0.0]}),
        "zero scale": ("preprocessor", {**meta["preprocessor"], "scale": [0.0] * 64}),
        "wide input": ("input", {"shape": ["b", 1 << 30], "dtype": "float32"}),
        "versions": ("versions", {"jax": 7}),
        "check": ("check", {"platform": "cpu", "outputs": [[0.1] * 10]}),
    }
    key, value = changes[case]
    return {**meta, key: value}


@pytest.mark.parametrize(
    "case, message",
    [
        ("duplicate key", r"not valid JSON \(the key 'task' appears twice"),
        ("deep", r"nests 1000 levels deep, more than the 16 allowed"),
        ("NaN label", r"not valid JSON \(NaN is not a JSON number"),
        ("all labels cat", r'"labels" should be distinct'),
        ("3 labels", r"3 labels for 10 outputs"),
        ("mixed labels", r'"labels" should be all strings .* or all numbers'),
        ("regression", r"a regression predictor has one output and no labels, got 10 outputs and 10 labels"),
        ("huge bucket", r'"buckets" should be up to 32 increasing batch sizes, 1 to 65536'),
        ("unsorted buckets", r'"buckets" should be'),
        ("platforms as text", r'"platforms" should be a list of distinct names from \[.cpu., .cuda.'),
        ("a platform nobody knows", r"'xcpux'"),
        ("an unknown key", r"format 2 has exactly the keys"),
        ("preprocessor", r'"preprocessor" should be null or hold .* lists of 64 numbers'),
        ("zero scale", r"scales should be positive"),
        ("wide input", r'"input" should be .* size 1 to 16777216'),
        ("versions", r'"versions" should give'),
        ("check", r'"check" should hold .* 4 rows of 10 finite numbers'),
    ],
)
def test_metadata_is_checked_field_by_field_even_with_a_matching_manifest(copy, case, message, monkeypatch):
    monkeypatch.setattr(artifact, "run_in_child", None)  # refused before any program runs, here or in a child
    forge(copy, metadata=spoil(meta_of(copy), case))
    with pytest.raises(ValueError, match=message) as error:
        mlkit.load_predictor(copy)
    assert str(copy) in str(error.value)


@pytest.mark.parametrize(
    "metadata, message",
    [
        (b"\x89PNG not json", r"metadata.json is not valid JSON"),
        (b'{"name": "resnet50"}', r'not mlkit predictor metadata: expected "format": "mlkit.predictor", got None'),
        (b"[1, 2, 3]", r"not mlkit predictor metadata.*got 'list'"),
        (b'{"format": "mlkit.predictor", "task": "classification"}', r"lacks the keys \['format_version', 'labels'"),
    ],
)
def test_foreign_metadata_is_refused(copy, metadata, message):
    forge(copy, metadata=metadata)
    with pytest.raises(ValueError, match=message) as error:
        mlkit.load_predictor(copy)
    assert str(copy) in str(error.value)


def test_missing_files_and_a_plain_file_are_refused(copy, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No predictor artifact at .*nowhere.*mlkit.save_predictor"):
        mlkit.load_predictor(tmp_path / "nowhere")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match=r"model.pkl is a file, not a predictor artifact"):
        mlkit.load_predictor(tmp_path / "model.pkl")
    (copy / artifact.PAYLOAD).unlink()
    with pytest.raises(ValueError, match=r"is incomplete: function.jaxexport is missing"):
        mlkit.load_predictor(copy)
    (copy / artifact.MANIFEST).unlink()
    with pytest.raises(ValueError, match=r"is incomplete: it has no manifest.json"):
        mlkit.load_predictor(copy)
    (copy / artifact.METADATA).unlink()
    with pytest.raises(ValueError, match=r"is not a predictor artifact: it has no metadata.json"):
        mlkit.load_predictor(copy)


def test_symbolic_links_and_special_files_are_never_read(copy, tmp_path):
    outside = tmp_path / "elsewhere.bin"
    shutil.move(copy / artifact.PAYLOAD, outside)  # the very bytes the manifest expects
    (copy / artifact.PAYLOAD).symlink_to(outside)
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    with pytest.raises(ValueError, match=r"function.jaxexport is a symbolic link") as error:
        mlkit.load_predictor(copy)
    assert digest not in str(error.value) and "elsewhere" not in str(error.value)
    (copy / artifact.PAYLOAD).unlink()
    os.mkfifo(copy / artifact.PAYLOAD)  # would block a reader that opened it naively
    with pytest.raises(ValueError, match=r"function.jaxexport is not a plain file"):
        mlkit.load_predictor(copy)
    shutil.move(copy / artifact.METADATA, tmp_path / "meta.json")
    (copy / artifact.METADATA).symlink_to(tmp_path / "meta.json")
    with pytest.raises(ValueError, match=r"metadata.json is a symbolic link"):
        artifact.read_metadata(copy)


@pytest.mark.parametrize("name", [artifact.METADATA, artifact.MANIFEST, artifact.SIGNATURE])
def test_a_directory_in_place_of_a_file_is_refused_by_name(copy, name):
    (copy / name).unlink()
    (copy / name).mkdir()
    with pytest.raises(ValueError, match=rf"{name} is not a plain file but a directory"):
        mlkit.load_predictor(copy)


def test_a_key_file_that_is_a_directory_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"\(--key-file\) is a directory"):
        verify.key_from(tmp_path)


def test_sizes_are_checked_before_anything_is_read(copy):
    huge = 300 << 20
    with open(copy / artifact.METADATA, "r+b") as f:
        f.truncate(huge)  # a sparse file: no disk, but reading it would take 300 MB of memory
    manifest = json.loads((copy / artifact.MANIFEST).read_text())
    manifest["files"][artifact.METADATA]["bytes"] = huge
    (copy / artifact.MANIFEST).write_text(json.dumps(manifest))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"metadata.json is 314,572,800 bytes, more than the 16,777,216 allowed"):
            mlkit.load_predictor(copy)
        assert tracemalloc.get_traced_memory()[1] < 20 << 20
    finally:
        tracemalloc.stop()


def test_the_payload_cap_is_a_keyword(saved):
    with pytest.raises(
        ValueError, match=r"function.jaxexport is \d[\d,]* bytes, more than the 1,000 allowed \(max_bytes\)"
    ):
        mlkit.load_predictor(saved, max_bytes=1000)


def test_artifact_from_an_incompatible_jax_says_how_to_re_export(copy):
    for key, value, message in [
        ("serialization", 999, r"jax.export serialization version 999.*Re-export it.*python -m mlkit train .* --out"),
        ("calling_convention", 999, r"calling convention 999.*mlkit.save_predictor"),
    ]:
        meta = meta_of(copy)
        meta["versions"].update({key: value, "jax": "9.0.0"})
        forge(copy, metadata=meta)
        with pytest.raises(ValueError, match=message):
            mlkit.load_predictor(copy)


def test_newer_artifact_format_is_refused(copy):
    forge(copy, metadata={**meta_of(copy), "format_version": 99, "something": "new"})
    with pytest.raises(ValueError, match=r"format 99.*Upgrade mlkit"):
        mlkit.load_predictor(copy)


def test_an_artifact_of_the_first_format_still_loads(saved, tmp_path, digits):
    """mlkit 0.1 wrote no manifest: the payload's size and sha256 sat in metadata.json."""
    old = tmp_path / "old"
    old.mkdir()
    payload = (saved / artifact.PAYLOAD).read_bytes()
    meta = {key: value for key, value in meta_of(saved).items() if key != "check"}
    meta.update(format_version=1, payload={"file": artifact.PAYLOAD, **artifact._entry(payload)})
    (old / artifact.PAYLOAD).write_bytes(payload)
    (old / artifact.METADATA).write_text(json.dumps(meta))
    loaded = mlkit.load_predictor(old)  # unsigned, so its program is checked in a child first
    np.testing.assert_array_equal(
        loaded.predict(digits.test.raw_x), mlkit.load_predictor(saved).predict(digits.test.raw_x)
    )
    with pytest.raises(ValueError, match=r"is not signed"):
        mlkit.load_predictor(old, key=KEY)


def test_a_predictor_that_cannot_be_described_is_not_saved(tmp_path):
    softmax = lambda x: jax.nn.softmax(x, axis=-1)
    for predictor, message in [
        (mlkit.Predictor(softmax, 3, labels=[f"l{i}" for i in range(10)]), r"10 labels for 3 outputs"),
        (mlkit.Predictor(softmax, 3, labels=["a", "a", "b"]), r'"labels" should be distinct'),
        (mlkit.Predictor(lambda x: x.sum(1), 3, task="regression"), r"gives arrays of shapes \[\(b,\)\], not one"),
        (mlkit.Predictor(lambda x: x, 3, task="regression"), r"a regression predictor has one output"),
        (mlkit.Predictor(lambda x: softmax(x) * jnp.nan, 3, labels="abc"), r"hold NaN or infinity"),
    ]:
        with pytest.raises(ValueError, match=r"Cannot save this predictor: .*" + message):
            mlkit.save_predictor(predictor, tmp_path / "model")
        assert not (tmp_path / "model").exists()


# --- the program against its metadata -----------------------------------------------------------------------------


def test_a_program_that_does_not_match_its_metadata_is_refused(copy, predictor):
    meta = meta_of(copy)
    twenty = {
        **meta,
        "output": {"shape": ["b", 20], "dtype": "float32"},
        "labels": list(range(20)),
        "check": {"platform": "cpu", "outputs": [[0.05] * 20] * 4},
    }
    one_d = export(lambda x: x.sum(1), symbolic(64))
    cases = [  # what someone could put in the folder, each time with the manifest rewritten to match
        (twenty, None, r"the program gives \(float32\[b,10\]\), the metadata says float32\[b,20\]"),
        (meta, one_d, r"the program gives \(float32\[b\]\)"),
        (meta, export(predictor.fn, (1, 64)), r"takes only batches of exactly 1 rows"),
        (meta, export(predictor.fn, symbolic(64), platforms=("cuda",)), r"for the platforms \['cuda'\]"),
    ]
    for metadata, payload, message in cases:
        forge(copy, metadata=metadata, payload=payload)
        with pytest.raises(ValueError, match=message + r".*do not belong together"):
            mlkit.load_predictor(copy, verify=False)  # checked here, from the program's description alone
    forge(copy, metadata=meta, payload=one_d)
    with pytest.raises(ValueError, match=r"does not pass the check \(the program gives \(float32\[b\]\)"):
        mlkit.load_predictor(copy)  # and in the child, before this process deserializes anything


def test_a_changed_weight_is_caught_by_the_check_rows(copy, predictor, digits):
    payload = bytearray((copy / artifact.PAYLOAD).read_bytes())
    weights = max((np.asarray(leaf, np.float32) for leaf in jax.tree.leaves(predictor.params)), key=np.size)
    at = bytes(payload).find(weights.tobytes())  # the payload holds the weights as raw float32
    assert at >= 0, "the largest weight matrix should be in the payload as raw little-endian float32"
    pixel = int(np.argmax(digits.train.raw_x.var(0)))  # a pixel that varies, so its weights matter
    assert weights.shape[0] == digits.num_features
    payload[at + 4 * pixel * weights.shape[1] + 3] ^= 0x40  # the exponent byte of one of its weights
    forge(copy, payload=bytes(payload))
    quietly = mlkit.load_predictor(copy, verify=False)  # what happened before: other answers, silently
    x = digits.test.raw_x
    assert np.abs(quietly.predict_proba(x) - predictor.predict_proba(x)).max() > 1e-3
    with pytest.raises(ValueError, match=r"answers its check rows differently from when it was saved"):
        mlkit.verify_artifact(copy)
    with pytest.raises(ValueError, match=r"answers its check rows differently"):
        mlkit.load_predictor(copy)


# --- signing and trust --------------------------------------------------------------------------------------------


def test_a_signed_artifact_loads_only_with_its_key(predictor, tmp_path, monkeypatch):
    signed = mlkit.save_predictor(predictor, tmp_path / "signed", key=KEY)
    monkeypatch.setattr(artifact, "run_in_child", None)  # signed with the caller's key: trusted, nothing to check
    assert mlkit.load_predictor(signed, key=KEY).labels == predictor.labels
    with pytest.raises(ValueError, match=r"signed.*has a signature that does not match this key"):
        mlkit.load_predictor(signed, key=b"another key, also 16 bytes or more")
    here = mlkit.save_predictor(predictor, tmp_path / "here")  # signed with this machine's key, not KEY
    with pytest.raises(ValueError, match=r"does not match this key"):
        mlkit.load_predictor(here, key=KEY)
    (here / artifact.SIGNATURE).unlink()
    with pytest.raises(ValueError, match=r"here is not signed: .*nothing in it was read"):
        mlkit.load_predictor(here, key=KEY)
    with pytest.raises(ValueError, match=r"the key is 5 bytes; a signing key needs at least 16"):
        mlkit.save_predictor(predictor, tmp_path / "weak", key="short")


def test_with_a_key_an_altered_artifact_is_refused_before_anything_is_parsed(predictor, tmp_path, monkeypatch):
    path = mlkit.save_predictor(predictor, tmp_path / "signed", key=KEY)
    signature = (path / artifact.SIGNATURE).read_bytes()
    meta = meta_of(path)
    forge(path, metadata={**meta, "labels": meta["labels"][::-1]})  # a consistent manifest, the old signature
    (path / artifact.SIGNATURE).write_bytes(signature)

    def never(*args, **kwargs):
        raise AssertionError("parsed or deserialized before the signature was checked")

    monkeypatch.setattr(artifact, "parse_json", never)
    monkeypatch.setattr(jax.export, "deserialize", never)
    with pytest.raises(ValueError, match=r"does not match this key"):
        mlkit.load_predictor(path, key=KEY)


def test_an_artifact_not_signed_here_is_run_in_a_child_first(copy, tmp_path, monkeypatch):
    checked = []
    real = artifact.run_in_child
    monkeypatch.setattr(artifact, "run_in_child", lambda *args, **kw: checked.append(args[3]) or real(*args, **kw))
    mlkit.load_predictor(copy)  # saved on this machine: signed with its key
    assert checked == []
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "another-machine"))
    assert verify.machine_key() is None
    mlkit.load_predictor(copy)
    assert checked == [str(copy)]
    mlkit.load_predictor(copy, verify=False)  # the caller's choice
    assert checked == [str(copy)]
    key = verify.machine_key(create=True)
    file = tmp_path / "another-machine" / "mlkit" / "artifact.key"
    assert key and file.stat().st_mode & 0o777 == 0o600 and verify.machine_key(create=True) == key
    file.chmod(0o644)  # a key others can read could sign for them
    assert verify.machine_key() is None


def test_the_command_line_takes_the_key_from_the_environment_or_a_file(predictor, digits, tmp_path):
    path = mlkit.save_predictor(predictor, tmp_path / "signed", key=KEY)
    np.savetxt(tmp_path / "rows.csv", digits.test.raw_x[:5], delimiter=",", fmt="%g")
    (tmp_path / "key").write_bytes(KEY + b"\n")
    command = [sys.executable, "-m", "mlkit", "predict", str(path), str(tmp_path / "rows.csv")]
    env = {**os.environ, verify.KEY_ENV: "a wrong key, long enough"}
    wrong = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert wrong.returncode == 2 and "does not match this key" in wrong.stderr, wrong.stderr
    right = subprocess.run([*command, "--key-file", str(tmp_path / "key")], capture_output=True, text=True, env=env)
    assert right.returncode == 0, right.stderr
    assert right.stdout.split() == [str(label) for label in predictor.predict(digits.test.raw_x[:5])]
    missing = subprocess.run([*command, "--key-file", str(tmp_path / "nokey")], capture_output=True, text=True, env=env)
    assert (
        missing.returncode == 2
        and "The key file" in missing.stderr
        and "(--key-file) does not exist" in (missing.stderr)
    ), missing.stderr


def test_a_server_with_a_key_loads_and_reloads_only_what_it_signed(predictor, tmp_path):
    signed = mlkit.save_predictor(predictor, tmp_path / "signed", key=KEY)
    other = mlkit.save_predictor(predictor, tmp_path / "other")
    settings = Settings(signed, key=KEY, max_batch=4)
    assert KEY.decode() not in repr(settings)
    assert load_for(settings).labels == list(predictor.labels)
    with pytest.raises(ValueError, match=r"other has a signature that does not match this key"):
        load_for(settings, other)  # what POST /admin/reload calls


# --- a program that crashes or hangs ends the child, not the caller -----------------------------------------------


def forever(x):
    """A program that never returns: a loop whose condition stays true."""
    count, x = jax.lax.while_loop(lambda c: c[0] > -1.0, lambda c: (c[0] + 1.0, c[1]), (jnp.float32(0), x))
    return jax.nn.softmax(x + jnp.minimum(count, 0.0), axis=-1)  # uses the count, so XLA keeps the loop


@pytest.fixture
def never_returns(tmp_path):
    tiny = mlkit.Predictor(lambda x: jax.nn.softmax(x, axis=-1), 3, labels=["a", "b", "c"])
    path = mlkit.save_predictor(tiny, tmp_path / "forever")
    return forge(path, payload=export(forever, symbolic(3), platforms=tuple(meta_of(path)["platforms"])))


def test_a_program_that_never_returns_is_stopped_and_the_server_goes_on(never_returns, monkeypatch):
    monkeypatch.setattr(verify, "TIMEOUT_S", 10.0)
    with pytest.raises(ValueError, match=r"forever: checking its program .*took more than 10 s \(while running the pr"):
        load_for(Settings(never_returns, max_batch=4))  # what a server does at start and on every reload


def children_running(script: str) -> list[int]:
    """The pids of this process's children whose command line names ``script``."""
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", script], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="finds the child with pgrep")
@pytest.mark.parametrize("crash", ["SIGSEGV", "SIGABRT"])
def test_a_child_that_crashes_gives_a_clear_error_and_the_caller_survives(never_returns, crash):
    """The child really dies of the signal, as a payload that crashes jax's deserializer or XLA makes it die."""

    def crash_the_child():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = children_running("verify.py")
            if running:
                time.sleep(1.0)  # let it get into the program
                os.kill(running[0], getattr(signal, crash))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=crash_the_child)
    killer.start()
    try:
        with pytest.raises(
            ValueError, match=rf"forever: its program crashed the child process that checked it \({crash}"
        ):
            mlkit.verify_artifact(never_returns)
    finally:
        killer.join()


def gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends (or is a zombie, dead but not yet reaped) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(shutil.which("pgrep") is None or not Path("/proc").is_dir(), reason="finds the child in /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_child_dies_with_its_parent(never_returns, how):
    """A caller killed mid-check leaves no program running on without it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import sys, mlkit; mlkit.verify_artifact(sys.argv[1])", str(never_returns)]
    )
    child = None
    try:
        deadline = time.monotonic() + 60
        while child is None and time.monotonic() < deadline and parent.poll() is None:
            found = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", "verify.py"], capture_output=True, text=True)
            child = int(found.stdout.split()[0]) if found.stdout.split() else None
            time.sleep(0.1)
        assert child is not None, "the parent never started the check"
        time.sleep(8.0)  # well into the program: a child killed earlier dies anyway, writing its progress to no one
        os.kill(parent.pid, getattr(signal, how))
        parent.wait(10)
        assert gone(child, within=5), f"the child {child} runs on after its parent was killed with {how}"
    finally:
        parent.kill()
        parent.wait()
        if child is not None and not gone(child, within=0.1):
            os.kill(child, signal.SIGKILL)


def test_the_child_has_its_own_time_limit(never_returns, monkeypatch):
    """Even if its caller never stops it, the child ends itself: here 3 s, where the caller waits 30."""
    monkeypatch.setattr(verify, "_GRACE_S", -27.0)
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"took more than 30 s \(while running the program") as error:
        mlkit.verify_artifact(never_returns, timeout=30)
    assert time.monotonic() - started < 25, str(error.value)


# --- saving: never missing, never half-written --------------------------------------------------------------------


def test_a_crash_mid_save_leaves_the_old_artifact_intact(trained, digits, copy, monkeypatch):
    before = mlkit.load_predictor(copy).predict(digits.test.raw_x[:20])
    real_write = storage._write

    def crash(file, data):
        if file.name == artifact.PAYLOAD:
            file.write_bytes(data[: len(data) // 2])
            raise OSError("No space left on device")
        real_write(file, data)

    monkeypatch.setattr(storage, "_write", crash)
    renamed = mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)])
    for target in (copy, copy.parent / "fresh"):
        with pytest.raises(OSError, match="No space"):
            mlkit.save_predictor(renamed, target)
    np.testing.assert_array_equal(mlkit.load_predictor(copy).predict(digits.test.raw_x[:20]), before)
    assert not (copy.parent / "fresh").exists()
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy"]  # no half-written staging directory left


def test_a_failure_at_the_swap_leaves_the_old_artifact_intact(trained, digits, copy, monkeypatch):
    before = mlkit.load_predictor(copy).predict(digits.test.raw_x[:20])

    def power_cut(a, b):
        raise OSError("power cut")

    monkeypatch.setattr(storage, "exchange", power_cut)
    with pytest.raises(OSError, match="power cut"):
        mlkit.save_predictor(mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)]), copy)
    np.testing.assert_array_equal(mlkit.load_predictor(copy).predict(digits.test.raw_x[:20]), before)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy"]


def test_without_an_atomic_swap_saving_still_works(trained, digits, copy, monkeypatch):
    monkeypatch.setattr(storage, "exchange", lambda a, b: False)  # a system or file system that cannot swap
    mlkit.save_predictor(mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)]), copy)
    assert mlkit.load_predictor(copy).labels[0] == "d0"
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy"]


def test_saving_over_an_artifact_replaces_it_but_never_a_foreign_directory_or_a_link(trained, digits, copy, tmp_path):
    mlkit.save_predictor(mlkit.freeze(trained, digits, labels=[f"d{i}" for i in range(10)]), copy)
    assert mlkit.load_predictor(copy).labels[0] == "d0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ValueError, match=r"Refusing to save over .*photos"):
        mlkit.save_predictor(mlkit.freeze(trained, digits), precious)
    assert (precious / "cat.jpg").read_bytes() == b"meow"
    (tmp_path / "current").symlink_to(copy)
    with pytest.raises(ValueError, match=r"Refusing to save over .*current: it is a symbolic link"):
        mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "current")


SAVER = """
import sys
import jax
import mlkit

path = sys.argv[1]
versions = [
    mlkit.Predictor(lambda x: jax.nn.softmax(x, axis=-1), 3, labels=[f"{name}{i}" for i in range(3)])
    for name in "ab"
]
for i in range(10_000):
    mlkit.save_predictor(versions[i % 2], path)
    print("saved", flush=True)
"""


def writing(folder: Path, timeout: float = 10.0) -> None:
    """Return as soon as a save in ``folder`` has started writing its hidden directory."""
    deadline = time.monotonic() + timeout
    while not any(p.name.startswith(".model.saving-") for p in folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_artifact(tmp_path):
    path = tmp_path / "model"
    rng = random.Random(0)
    for i in range(6):
        with subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True) as saver:
            try:
                assert saver.stdout is not None and saver.stdout.readline() == "saved\n"
                if i % 2:  # while it writes, swaps and cleans up: where a save can go wrong
                    writing(tmp_path)
                    time.sleep(rng.uniform(0.0, 0.01))
                else:  # anywhere: a save takes about 0.1-0.2 s
                    time.sleep(rng.uniform(0.0, 0.5))
            finally:
                saver.kill()  # kill -9
        assert mlkit.load_predictor(path).labels[0] in ("a0", "b0")
    mlkit.save_predictor(mlkit.Predictor(lambda x: jax.nn.softmax(x, axis=-1), 3, labels=["c0", "c1", "c2"]), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # what the killed saves left is gone


READER = """
import sys, traceback
from pathlib import Path
import mlkit

path, stop = Path(sys.argv[1]), Path(sys.argv[2])
loads = errors = 0
while not stop.exists():
    try:
        assert mlkit.load_predictor(path).labels[0] in ("a0", "b0")
        loads += 1
    except Exception:
        errors += 1
        traceback.print_exc()
print(loads, errors)
"""


def test_readers_during_saves_always_get_a_whole_artifact(tmp_path):
    path, stop = tmp_path / "model", tmp_path / "stop"
    versions = [
        mlkit.Predictor(lambda x: jax.nn.softmax(x, axis=-1), 3, labels=[f"{name}{i}" for i in range(3)])
        for name in "ab"
    ]
    mlkit.save_predictor(versions[0], path)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(stop)], stdout=subprocess.PIPE, text=True)
    problems: list[BaseException] = []
    loads = []

    def read():
        while not stop.exists():
            try:
                loads.append(mlkit.load_predictor(path).labels[0])
            except Exception as e:  # noqa: PERF203 (a reader must never see one)
                problems.append(e)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)  # let the reader process start reading
        for i in range(12):
            mlkit.save_predictor(versions[i % 2], path)
    finally:
        stop.touch()
        for thread in threads:
            thread.join()
        out, _ = reader.communicate(timeout=60)
    assert not problems, problems[:3]
    assert set(loads) <= {"a0", "b0"} and len(loads) > 12
    process_loads, process_errors = map(int, out.split())
    assert process_errors == 0 and process_loads > 0
