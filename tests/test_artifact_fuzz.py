"""A few hundred generated damages to one artifact: each loads and answers as the original does, or is refused.

"Refused" means a ValueError with a message; nothing may crash or hang this process. Each
kind of damage is aimed at the layer that must catch it:

- metadata changed and the manifest rewritten to match: validation (the program is the
  original, so these load with ``verify=False``); what still loads must give the original's
  probabilities and the labels the metadata now lists, since only a signature can tell
  which labels are the real ones;
- metadata changed, manifest left alone: the manifest's sha256;
- a signed artifact changed, its manifest rewritten: the signature;
- a byte of the payload changed, the manifest rewritten to match: the child process that
  runs the program first (or validation). What loads must answer as the original did;
- a byte of an ``.onnx`` file changed anywhere: its signature no longer holds, so ONNX Runtime
  runs it in a child first, and its answers must be those the file recorded.

Seeded, so a failure repeats; bounded to well under a minute on two cores.
"""

import copy
import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_artifact import KEY, forge, meta_of

import mlkit
from mlkit.infer import artifact

SEED = 14
METADATA_CASES, STALE_CASES, SIGNED_CASES, PAYLOAD_CASES = 300, 20, 20, 16
VALUES = [0, -1, 1, 2, 10, 64, 1024, 2**31, 2**63, -0.5, 3.5, 1e308, float("nan"), float("inf"), True, False, None]
VALUES += ["", "b", "cpu", "cuda", "x" * 2000, [], [1], [1, 1], ["a"], {}, {"a": 1}, [[[[[[]]]]]]]


@pytest.fixture(scope="module")
def original(trained, digits, tmp_path_factory):
    """The artifact to damage, and the original's answers to the digits test split."""
    predictor = mlkit.freeze(trained, digits)
    path = mlkit.save_predictor(predictor, tmp_path_factory.mktemp("fuzz") / "original")
    return path, predictor.predict_proba(digits.test.raw_x)


def places(node, at=()):
    """Every place in a JSON tree (the first few items of a long list)."""
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from places(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):
            yield from places(value, (*at, i))


def damaged(meta: dict, rng: random.Random) -> bytes:
    """``meta`` with one generated change, as JSON bytes (sometimes not valid JSON at all)."""
    if rng.random() < 0.15:
        text = bytearray(json.dumps(meta, indent=2).encode())
        i = rng.randrange(len(text))
        kind = rng.choice(["flip", "cut", "insert"])
        if kind == "flip":
            text[i] = rng.randrange(256)
        elif kind == "insert":
            text[i:i] = rng.choice([b"[", b"{", b"]", b",", b'"', b"\\", b"\xff", b"NaN"])
        return bytes(text[:i] if kind == "cut" else text)
    meta = copy.deepcopy(meta)
    *parents, last = rng.choice(list(places(meta))[1:])
    node = meta
    for step in parents:
        node = node[step]
    value = node[last]
    kind = rng.choice(["replace", "replace", "delete", "add", "grow", "shrink", "reverse", "nudge"])
    if kind == "delete" and isinstance(node, dict):
        del node[last]
    elif kind == "add" and isinstance(node, dict):
        node[rng.choice(["extra", "payload", "check", "labels", "__class__"])] = rng.choice(VALUES)
    elif kind in ("grow", "shrink", "reverse") and isinstance(value, list) and value:
        node[last] = value + value[-1:] if kind == "grow" else value[:-1] if kind == "shrink" else value[::-1]
    elif kind == "nudge" and isinstance(value, (int, float)) and not isinstance(value, bool):
        node[last] = rng.choice([value + 1, value - 1, value * 1000, -value, value + 1e-3])
    elif kind == "nudge" and isinstance(value, str):
        node[last] = rng.choice([value + "x", value.upper(), value[:-1], " " + value])
    else:
        node[last] = copy.deepcopy(rng.choice(VALUES))
    return json.dumps(meta, indent=2).encode()


def outcome(load, check) -> str:
    """ "refused" (a ValueError), or "loaded" after ``check`` passed on what loaded."""
    try:
        loaded = load()
    except ValueError as e:
        assert str(e), "a refusal must say why"
        return "refused"
    check(loaded)
    return "loaded"


def test_damaged_metadata_is_refused_or_changes_nothing_but_what_it_says(original, digits, tmp_path):
    path, expected = original
    meta, rng = meta_of(path), random.Random(SEED)
    seen = {"refused": 0, "loaded": 0}
    for i in range(METADATA_CASES):
        target = forge(shutil.copytree(path, tmp_path / f"m{i}"), metadata=damaged(meta, rng))

        def check(loaded, target=target):
            said = json.loads((target / artifact.METADATA).read_text())
            np.testing.assert_array_equal(loaded.predict_proba(digits.test.raw_x), expected)
            assert list(loaded.labels) == said["labels"] and loaded.task == said["task"]

        seen[outcome(lambda target=target: mlkit.load_predictor(target, verify=False), check)] += 1
    assert seen["refused"] > METADATA_CASES // 2 and seen["loaded"] > 0, seen


def test_damage_the_manifest_or_the_signature_does_not_cover_is_refused(original, predictor_key_path, tmp_path):
    path, _ = original
    meta, rng = meta_of(path), random.Random(SEED + 1)
    for i in range(STALE_CASES):  # the manifest left as it was
        target = shutil.copytree(path, tmp_path / f"s{i}")
        (target / artifact.METADATA).write_bytes(damaged(meta, rng))
        with pytest.raises(ValueError, match=r"metadata.json (has been altered|is \d+ bytes, expected)"):
            mlkit.load_predictor(target, verify=False)
    signature = (predictor_key_path / artifact.SIGNATURE).read_bytes()
    for i in range(SIGNED_CASES):  # the manifest rewritten to match, the signature kept
        target = forge(shutil.copytree(predictor_key_path, tmp_path / f"k{i}"), metadata=damaged(meta, rng))
        (target / artifact.SIGNATURE).write_bytes(signature)
        with pytest.raises(ValueError, match=r"has a signature that does not match this key"):
            mlkit.load_predictor(target, key=KEY)


@pytest.fixture
def predictor_key_path(trained, digits, tmp_path):
    return mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "signed", key=KEY)


def test_a_damaged_payload_is_refused_or_answers_as_before(original, digits, tmp_path):
    path, expected = original
    payload, rng = (path / artifact.PAYLOAD).read_bytes(), random.Random(SEED + 2)
    confident = np.sort(expected, axis=1)[:, -1] - np.sort(expected, axis=1)[:, -2] > 1e-3
    targets = []
    for i in range(PAYLOAD_CASES):
        damaged_payload = bytearray(payload)
        where = rng.randrange(len(payload))
        damaged_payload[where] = (damaged_payload[where] + rng.randrange(1, 256)) % 256
        targets.append(forge(shutil.copytree(path, tmp_path / f"p{i}"), payload=bytes(damaged_payload)))

    def check(loaded):
        got = loaded.predict_proba(digits.test.raw_x)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        np.testing.assert_array_equal(got.argmax(1)[confident], expected.argmax(1)[confident])

    reasons = []

    def attempt(target: Path) -> str:
        try:
            loaded = mlkit.load_predictor(target)  # unsigned: its program runs in a child first
        except ValueError as e:
            reasons.append(str(e))
            return "refused"
        check(loaded)
        return "loaded"

    with ThreadPoolExecutor(2) as pool:  # two children at a time, one per core
        seen = list(pool.map(attempt, targets))
    assert seen.count("refused") > 0 and seen.count("loaded") > 0, seen
    assert any("answers its check rows differently" in reason for reason in reasons), reasons
    assert any("does not pass the check" in reason or "crashed" in reason for reason in reasons), reasons


ONNX_CASES = 40


def test_a_damaged_onnx_file_is_refused_or_answers_as_before(trained, digits, tmp_path):
    """One byte changed anywhere in an .onnx file: its signature no longer holds, so it is checked in a child."""
    pytest.importorskip("jax2onnx", reason="needs the optional extra: pip install -e '.[onnx]'")
    path = mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "original.onnx")
    expected = mlkit.load_predictor(path).predict_proba(digits.test.raw_x)
    confident = np.sort(expected, axis=1)[:, -1] - np.sort(expected, axis=1)[:, -2] > 1e-3
    data, rng = path.read_bytes(), random.Random(SEED + 3)
    targets = []
    for i in range(ONNX_CASES):
        damaged_file = bytearray(data)
        where = rng.randrange(len(data))
        damaged_file[where] = (damaged_file[where] + rng.randrange(1, 256)) % 256
        targets.append(tmp_path / f"o{i}.onnx")
        targets[-1].write_bytes(bytes(damaged_file))

    def attempt(target: Path) -> str:
        try:
            loaded = mlkit.load_predictor(target)
        except ValueError as e:
            assert str(e), "a refusal must say why"
            return "refused"
        got = loaded.predict_proba(digits.test.raw_x)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=str(target))
        np.testing.assert_array_equal(got.argmax(1)[confident], expected.argmax(1)[confident])
        return "loaded"

    with ThreadPoolExecutor(2) as pool:  # two children at a time, one per core
        seen = list(pool.map(attempt, targets))
    assert seen.count("refused") > ONNX_CASES // 2 and seen.count("loaded") > 0, seen
