"""The portable artifact: one .onnx file that plain ONNX Runtime runs with the same answers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mlkit
from mlkit.infer import compress, onnx_format

if os.environ.get("CI") != "true":  # in CI the extra is installed by `make test` and these must run
    pytest.importorskip("jax2onnx", reason="needs the optional extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxruntime", reason="needs the optional extra: pip install -e '.[onnx]'")

TOLERANCE = 1e-5  # max abs difference in probabilities on the digits test split


@pytest.fixture(scope="module")
def normed(digits):
    model = mlkit.MLP(digits.num_features, (32,), digits.num_classes, dropout=0.3, batch_norm=True, seed=1)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=3, progress=False))
    return model


def round_trip(predictor, digits, tmp_path, name="model.onnx"):
    path = mlkit.save_predictor(predictor, tmp_path / name)
    loaded = mlkit.load_predictor(path)
    assert isinstance(loaded, onnx_format.OnnxPredictor)
    return loaded


def test_mlp_round_trip_gives_the_same_probabilities_and_labels(trained, digits, tmp_path):
    frozen = mlkit.freeze(trained, digits)
    loaded = round_trip(frozen, digits, tmp_path)
    x = digits.test.raw_x
    assert np.abs(loaded.predict_proba(x) - frozen.predict_proba(x)).max() <= TOLERANCE
    assert (loaded.predict(x) == frozen.predict(x)).all()
    assert loaded.labels == frozen.labels and loaded.num_features == 64
    assert loaded.preprocessor is not None and np.allclose(loaded.preprocessor.mean, frozen.preprocessor.mean)


@pytest.mark.parametrize("variant", ["batch norm and dropout", "int8", "bfloat16", "pruned 50%", "folded"])
def test_compressed_and_normalised_variants_convert(variant, normed, digits, tmp_path):
    frozen = {
        "batch norm and dropout": lambda: mlkit.freeze(normed, digits),
        "int8": lambda: compress.quantize(normed, digits, "int8"),
        "bfloat16": lambda: compress.quantize(normed, digits, "bfloat16"),
        "pruned 50%": lambda: compress.prune(normed, digits, 0.5),
        "folded": lambda: compress.fold(normed, digits),
    }[variant]()
    loaded = round_trip(frozen, digits, tmp_path)
    assert np.abs(loaded.predict_proba(digits.test.raw_x) - frozen.predict_proba(digits.test.raw_x)).max() <= TOLERANCE


def test_convnet_converts(digits, tmp_path):
    model = mlkit.ConvNet((8, 8), 10, channels=(8,), seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=2, progress=False))
    frozen = mlkit.freeze(model, digits)
    loaded = round_trip(frozen, digits, tmp_path)
    assert np.abs(loaded.predict_proba(digits.test.raw_x) - frozen.predict_proba(digits.test.raw_x)).max() <= TOLERANCE


def test_regression_round_trip():
    curve = mlkit.load_dataset("regression_curve", seed=0)
    model = mlkit.MLP(1, (16,), 1, seed=0)
    mlkit.fit(model, curve, mlkit.TrainConfig(epochs=5, batch_size=8, progress=False))
    frozen = mlkit.freeze(model, curve)
    path = mlkit.save_predictor(frozen, os.path.join(os.environ.get("TMPDIR", "/tmp"), f"curve-{os.getpid()}.onnx"))
    try:
        loaded = mlkit.load_predictor(path)
        assert loaded.task == "regression" and loaded.labels == ()
        np.testing.assert_allclose(loaded.predict(curve.test.raw_x), frozen.predict(curve.test.raw_x), atol=TOLERANCE)
        with pytest.raises(ValueError, match="predict_proba needs a classifier"):
            loaded.predict_proba(curve.test.raw_x)
    finally:
        path.unlink()


PLAIN_RUNTIME = """
import sys
import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession(sys.argv[1])
np.save(sys.argv[3], session.run(None, {"x": np.load(sys.argv[2])})[0])
extra = [m for m in sys.modules if m == "mlkit" or m.startswith(("mlkit.", "jax", "flax"))]
assert not extra, f"needed more than onnxruntime: {extra[:5]}"
"""


def test_plain_onnxruntime_without_mlkit_runs_the_file(trained, digits, tmp_path):
    frozen = mlkit.freeze(trained, digits)
    path = mlkit.save_predictor(frozen, tmp_path / "model.onnx")
    x = digits.test.raw_x.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_RUNTIME, str(path), str(tmp_path / "x.npy"), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert np.abs(np.load(tmp_path / "out.npy") - frozen.predict_proba(x)).max() <= TOLERANCE


def test_input_checks_stay(trained, digits, tmp_path):
    loaded = round_trip(mlkit.freeze(trained, digits), digits, tmp_path)
    with pytest.raises(ValueError, match=r"shape \(n, 64\).*got 63 features"):
        loaded.predict(np.zeros((2, 63)))
    bad = digits.test.raw_x[:3].copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"rows \[1\] hold NaN"):
        loaded.predict(bad)
    assert (
        loaded.predict(digits.test.raw_x[:5].astype(np.int64)).tolist()
        == loaded.predict(digits.test.raw_x[:5]).tolist()
    )
    huge = digits.test.raw_x[:3].copy()
    huge[2] = 3e38  # finite inputs whose answers overflow: the same error as the JAX predictor's, not NaN
    with pytest.raises(ValueError, match=r"Rows \[2\] gave NaN or infinite outputs"):
        loaded.predict_proba(huge)


def test_a_predictor_loaded_from_jax_export_cannot_convert_again(trained, digits, tmp_path):
    loaded = mlkit.load_predictor(mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "dir"))
    with pytest.raises(ValueError, match=r"cannot be exported to ONNX.*freeze the trained model"):
        mlkit.save_predictor(loaded, tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_foreign_corrupt_and_missing_files_get_clear_errors(trained, digits, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 64])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), foreign)
    with pytest.raises(ValueError, match="not an mlkit predictor"):
        mlkit.load_predictor(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ValueError, match="not a model ONNX Runtime"):
        mlkit.load_predictor(garbage)
    with pytest.raises(FileNotFoundError, match="No ONNX artifact"):
        mlkit.load_predictor(tmp_path / "missing.onnx")


def test_formats_are_named_and_a_failed_save_keeps_the_old_file(trained, digits, tmp_path, monkeypatch):
    frozen = mlkit.freeze(trained, digits)
    with pytest.raises(ValueError, match=r'format must be "jax".*or "onnx"'):
        mlkit.save_predictor(frozen, tmp_path / "m", format="tflite")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        mlkit.save_predictor(frozen, tmp_path / "folder.onnx")
    path = mlkit.save_predictor(frozen, tmp_path / "explicit", format="onnx")  # no suffix, format given
    before = path.read_bytes()

    def power_cut(src, dst):
        raise OSError("disk pulled out")

    monkeypatch.setattr(onnx_format.os, "replace", power_cut)
    with pytest.raises(OSError, match="disk pulled out"):
        mlkit.save_predictor(compress.quantize(trained, digits, "int8"), path, format="onnx")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explicit", "folder.onnx"]  # no staging file left


# --- what an .onnx file carries is checked as a jax.export artifact's metadata is -------------------------------------


@pytest.fixture(scope="module")
def onnx_saved(trained, digits, tmp_path_factory):
    return mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path_factory.mktemp("onnx") / "model.onnx")


def rewritten(source, target, change=None, model=None):
    """A copy of the .onnx file ``source`` at ``target``, its mlkit metadata passed through ``change``."""
    import onnx

    model = model or onnx.load(str(source))
    entry = next(e for e in model.metadata_props if e.key == "mlkit")
    if change is not None:
        entry.value = json.dumps(change(json.loads(entry.value)))
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: {**m, "preprocessor": "x"}, r'"preprocessor" should be null or hold .* lists of 64 numbers'),
        (lambda m: {**m, "labels": [0] * 10}, r'"labels" should be distinct'),
        (lambda m: {**m, "pickle": "cos\nsystem"}, r"exactly the keys"),
        (lambda m: {**m, "labels": "0123456789"}, r'"labels" should be all strings'),
        (lambda m: {**m, "labels": m["labels"][:3]}, r"3 labels for 10 outputs"),
        (lambda m: {**m, "num_features": "64"}, r'"num_features" should be'),
        (lambda m: {**m, "num_features": 63, "preprocessor": None}, r"does not match the model's input"),
        (lambda m: {**m, "versions": None}, r'"versions" should give'),
        (lambda m: {k: v for k, v in m.items() if k != "task"}, r"exactly the keys"),
        (lambda m: {**m, "preprocessor": {**m["preprocessor"], "scale": [0.0] * 64}}, r"scales should be positive"),
        (lambda m: {**m, "tokenizer": {"kind": "words"}}, r'"tokenizer" is malformed'),
    ],
)
def test_onnx_metadata_is_checked_field_by_field(onnx_saved, tmp_path, change, message):
    target = rewritten(onnx_saved, tmp_path / "changed.onnx", change)
    with pytest.raises(ValueError, match=message) as error:
        mlkit.load_predictor(target)
    assert str(target) in str(error.value)


# --- a hostile .onnx file: what mlkit refuses before ONNX Runtime is given the bytes ----------------------------------


def test_a_tensor_whose_data_lives_in_another_file_is_refused(onnx_saved, tmp_path, monkeypatch):
    """An initializer may name a file (a signing key, say) that ONNX Runtime would read into a weight."""
    import onnx
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    monkeypatch.chdir(tmp_path)  # where a server runs: ONNX Runtime finds a file named by a relative path here
    secret = tmp_path / "artifact.key"
    secret.write_bytes(np.arange(10, dtype=np.float32).tobytes())
    model = onnx.load(str(onnx_saved))
    bias = next(t for t in model.graph.initializer if list(t.dims) == [10])
    stolen = TensorProto(name=bias.name, data_type=TensorProto.FLOAT, dims=[10], raw_data=bytes(40))
    stolen.data_location = TensorProto.EXTERNAL
    set_external_data(stolen, location=secret.name, length=40)  # the helper API's way to name the file
    stolen.ClearField("raw_data")  # as onnx.save does for a tensor it writes to another file
    bias.CopyFrom(stolen)
    target = rewritten(onnx_saved, tmp_path / "stealing.onnx", model=model)
    with pytest.raises(ValueError, match=r"external data") as error:
        mlkit.load_predictor(target)
    assert "artifact.key" in str(error.value)


def test_external_data_in_a_nested_graph_is_refused_too(onnx_saved, tmp_path):
    import onnx
    from onnx import TensorProto, helper
    from onnx.external_data_helper import set_external_data

    inner_value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[1], raw_data=bytes(4))
    set_external_data(inner_value, location="/etc/passwd", length=4)
    inner_value.ClearField("raw_data")
    inner = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
        initializer=[inner_value],
    )
    model = onnx.load(str(onnx_saved))
    flag = helper.make_tensor("flag", TensorProto.BOOL, [], vals=[True])
    model.graph.initializer.append(flag)
    model.graph.node.append(helper.make_node("If", ["flag"], ["unused"], then_branch=inner, else_branch=inner))
    target = rewritten(onnx_saved, tmp_path / "nested.onnx", model=model)
    with pytest.raises(ValueError, match=r"external data"):
        mlkit.load_predictor(target)


def extra_node(operator):
    """A valid node of ``operator`` (with the initializers and subgraphs it needs), whose output nothing reads."""
    from onnx import TensorProto, helper

    scalar = lambda name, kind, value: helper.make_tensor(name, kind, [], vals=[value])
    if operator == "ConstantOfShape":  # a tensor as large as a number in the file says
        return helper.make_node(operator, ["n"], ["unused"]), [helper.make_tensor("n", TensorProto.INT64, [1], [3])]
    if operator == "If":
        branch = helper.make_graph(
            [helper.make_node("Identity", ["c"], ["out"])],
            "branch",
            [],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [])],
            initializer=[scalar("c", TensorProto.FLOAT, 1.0)],
        )
        node = helper.make_node(operator, ["flag"], ["unused"], then_branch=branch, else_branch=branch)
        return node, [scalar("flag", TensorProto.BOOL, True)]
    body = helper.make_graph(  # Loop: as many turns as a number in the file says
        [helper.make_node("Identity", ["go"], ["go_on"]), helper.make_node("Identity", ["v"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info(name, kind, [])
            for name, kind in [("i", TensorProto.INT64), ("go", TensorProto.BOOL), ("v", TensorProto.FLOAT)]
        ],
        [
            helper.make_tensor_value_info("go_on", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, []),
        ],
    )
    node = helper.make_node(operator, ["turns", "flag", "start"], ["unused"], body=body)
    return node, [
        scalar("turns", TensorProto.INT64, 3),
        scalar("flag", TensorProto.BOOL, True),
        scalar("start", TensorProto.FLOAT, 0.0),
    ]


@pytest.mark.parametrize("operator", ["Loop", "ConstantOfShape", "If"])
def test_operators_mlkit_never_writes_are_refused_by_name(onnx_saved, tmp_path, operator):
    import onnx

    model = onnx.load(str(onnx_saved))
    node, initializers = extra_node(operator)
    model.graph.node.append(node)
    model.graph.initializer.extend(initializers)
    target = rewritten(onnx_saved, tmp_path / "extra.onnx", model=model)
    with pytest.raises(ValueError, match=rf"operator '{operator}'.*mlkit loads graphs of Add, AveragePool"):
        mlkit.load_predictor(target)


def test_an_operator_nested_in_a_subgraph_is_named(onnx_saved, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["s"], ["out"])],
        "body",
        [helper.make_tensor_value_info("s", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
    )
    model = onnx.load(str(onnx_saved))
    model.graph.node.insert(0, helper.make_node("Gather", ["x", "x"], ["unused"], body=body))  # a graph attribute
    target = rewritten(onnx_saved, tmp_path / "nested-op.onnx", model=model)
    with pytest.raises(ValueError, match=r"operator 'ConstantOfShape'"):
        mlkit.load_predictor(target)


def test_sizes_past_the_bounds_are_refused(onnx_saved, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_saved))
    model.graph.initializer.append(helper.make_tensor("huge", TensorProto.INT64, [2], vals=[1 << 40, 1 << 40]))
    with pytest.raises(ValueError, match=r"integer tensor 'huge' holds a value above"):
        mlkit.load_predictor(rewritten(onnx_saved, tmp_path / "huge.onnx", model=model))
    model = onnx.load(str(onnx_saved))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1 << 40
    with pytest.raises(ValueError, match=r"declares a dimension above"):
        mlkit.load_predictor(rewritten(onnx_saved, tmp_path / "wide.onnx", model=model))


# --- the trust rules of a jax.export directory: signed, or checked in a child first -----------------------------------

KEY = b"0123456789abcdef-a-test-key"


def altered(source, target, scale=3.0):
    """``source`` with its largest weight matrix scaled, saved again by the onnx package (the signature stays)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    weights = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * scale, weights.name))
    onnx.save(model, str(target))
    return target


def test_a_signed_file_loads_without_a_child_and_an_altered_one_is_caught(onnx_saved, digits, tmp_path, monkeypatch):
    expected = mlkit.load_predictor(onnx_saved).predict_proba(digits.test.raw_x)
    children = []
    real = onnx_format.run_in_child
    monkeypatch.setattr(onnx_format, "run_in_child", lambda *a, **k: children.append(a[3]) or real(*a, **k))
    mlkit.load_predictor(onnx_saved)
    assert children == [], "a file signed on this machine is trusted, as a signed directory is"
    changed = altered(onnx_saved, tmp_path / "altered.onnx")
    quietly = mlkit.load_predictor(changed, verify=False)  # what happened before: other answers, silently
    assert np.abs(quietly.predict_proba(digits.test.raw_x) - expected).max() > 1e-3
    with pytest.raises(ValueError, match=r"answers its check rows differently from when it was saved"):
        mlkit.load_predictor(changed)
    assert children == [str(changed)]


def test_a_file_signed_with_a_key_loads_only_with_that_key(trained, digits, tmp_path):
    path = mlkit.save_predictor(mlkit.freeze(trained, digits), tmp_path / "signed.onnx", key=KEY)
    assert mlkit.load_predictor(path, key=KEY).labels == tuple(digits.labels)
    with pytest.raises(ValueError, match=r"has a signature that does not match this key"):
        mlkit.load_predictor(path, key=b"another-key-of-16-bytes")
    with pytest.raises(ValueError, match=r"has a signature that does not match this key"):
        mlkit.load_predictor(altered(path, tmp_path / "altered.onnx"), key=KEY)
    import onnx

    model = onnx.load(str(path))
    kept = [entry for entry in model.metadata_props if entry.key != onnx_format.SIGNATURE]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    unsigned = rewritten(path, tmp_path / "unsigned.onnx", model=model)
    with pytest.raises(ValueError, match=r"is not signed"):
        mlkit.load_predictor(unsigned, key=KEY)
    assert mlkit.load_predictor(unsigned).labels == tuple(digits.labels)  # checked in a child, answers as saved


def test_a_file_saved_before_answers_were_recorded_still_loads_after_the_child_check(onnx_saved, digits, tmp_path):
    older = rewritten(onnx_saved, tmp_path / "older.onnx", lambda m: {k: v for k, v in m.items() if k != "check"})
    loaded = mlkit.load_predictor(older)  # no signature that holds, no answers: that it runs is all there is to check
    expected = mlkit.load_predictor(onnx_saved).predict_proba(digits.test.raw_x)
    np.testing.assert_array_equal(loaded.predict_proba(digits.test.raw_x), expected)
