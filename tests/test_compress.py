import numpy as np
import pytest
from flax import nnx

import mlkit
from mlkit.infer import compress


@pytest.fixture(scope="module")
def wide(digits):
    """The MLP the int8 promise is about: 64-256-256-10, trained to about 97% on digits."""
    model = mlkit.MLP(digits.num_features, (256, 256), digits.num_classes, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=20, progress=False))
    return model


@pytest.fixture(scope="module")
def normed(digits):
    """Batch norm and dropout, with running statistics and affine terms far from their initial values."""
    model = mlkit.MLP(digits.num_features, (32, 32), digits.num_classes, dropout=0.3, batch_norm=True, seed=1)
    rng = np.random.default_rng(0)
    for norm in model.norms:
        norm.mean[...] = rng.normal(0.0, 1.0, 32)
        norm.var[...] = rng.uniform(0.3, 3.0, 32)
        norm.scale[...] = rng.uniform(0.5, 1.5, 32)
        norm.bias[...] = rng.normal(0.0, 0.5, 32)
    return model


@pytest.fixture(scope="module")
def variants(wide, digits):
    return compress.variants(wide, digits, sparsities=(0.5,))


def weights(predictor):
    return [layer["w"] for layer in predictor.params["layers"]]


@pytest.mark.parametrize("which", ["wide", "normed", "logistic"])
def test_folding_keeps_the_answers_and_takes_raw_inputs(which, request, digits):
    if which == "logistic":
        model = mlkit.LogisticRegression(digits.num_features, digits.num_classes, seed=0)
    else:
        model = request.getfixturevalue(which)
    original, folded = mlkit.freeze(model, digits), compress.fold(model, digits)
    np.testing.assert_allclose(
        folded.predict_proba(digits.test.raw_x), original.predict_proba(digits.test.raw_x), atol=1e-5
    )
    assert set(folded.params) == {"layers"}  # plain Linear layers: no batch-norm statistics, no pre-processing
    assert all(set(layer) == {"w", "b"} for layer in folded.params["layers"])
    np.testing.assert_array_equal(folded.preprocessor(digits.test.raw_x[:3]), digits.test.raw_x[:3])
    if which == "normed":
        assert folded.nbytes < original.nbytes


def test_int8_is_a_quarter_of_the_size_and_as_accurate(variants, digits, tmp_path):
    int8, folded, original = variants["int8"], variants["folded"], variants["original"]
    assert all(w.dtype == np.int8 for w in weights(int8))
    assert int8.nbytes < 0.30 * folded.nbytes
    mlkit.save_predictor(int8, tmp_path / "int8")  # the saved function holds int8 constants too, not float32 copies
    assert (tmp_path / "int8" / "function.jaxexport").stat().st_size < 0.30 * folded.nbytes
    loaded = mlkit.load_predictor(tmp_path / "int8")
    np.testing.assert_array_equal(loaded.predict(digits.test.raw_x), int8.predict(digits.test.raw_x))
    accuracy = {
        name: np.mean(variants[name].predict_proba(digits.test.raw_x).argmax(1) == digits.test.y)
        for name in ("original", "int8")
    }
    assert accuracy["original"] > 0.95
    assert abs(accuracy["int8"] - accuracy["original"]) <= 0.015
    assert original.nbytes > folded.nbytes  # the pre-processing statistics are gone too


def test_bf16_halves_the_size(variants):
    bf16, folded = variants["bf16"], variants["folded"]
    assert all(w.dtype == np.dtype("bfloat16") for w in weights(bf16))
    assert bf16.nbytes * 2 == folded.nbytes


def test_pruning_zeroes_exactly_the_requested_share_of_each_weight_matrix(variants, wide, digits):
    for w in weights(variants["pruned 50%"]):
        assert np.count_nonzero(w == 0) == round(0.5 * w.size)
    pruned, full = variants["pruned 50%"].params["layers"], variants["folded"].params["layers"]
    for i, (p, f) in enumerate(zip(pruned, full, strict=True)):
        kept = p["w"] != 0
        np.testing.assert_allclose(p["w"][kept], f["w"][kept], rtol=1e-6)  # the survivors are untouched
        if i > 0:  # (the first layer's bias and scale also carry the folded pre-processing)
            np.testing.assert_array_equal(p["b"], f["b"])
            assert np.abs(p["w"][kept]).min() >= np.abs(f["w"][~kept]).max()  # the smallest went
    assert np.count_nonzero(weights(compress.prune(wide, digits, 0.0))[0] == 0) == 0
    with pytest.raises(ValueError, match=r"0 <= sparsity < 1, got 1.5"):
        compress.prune(wide, digits, 1.5)


def test_report_lists_every_variant_with_deltas(variants, digits):
    report = compress.measure(variants, digits.test, repeats=5)
    assert [row.name for row in report.rows] == ["original", "folded", "bf16", "int8", "pruned 50%"]
    assert report["original"].nbytes == variants["original"].nbytes and report["int8"].nbytes < report["bf16"].nbytes
    assert report["pruned 50%"].nonzero < 0.51 * report["pruned 50%"].params
    assert all(row.latency > 0 and 0.9 < row.accuracy <= 1 for row in report.rows)
    table = str(report)
    assert "int8" in table and "Δ points" in table and "batch-1 µs" in table and "100%" in table


def test_report_builds_the_variants_itself(normed, digits):
    report = compress.report(normed, digits, split="val", sparsities=(0.9,), repeats=2)
    assert report.split == "val" and report.rows[-1].name == "pruned 90%"


def test_models_without_linear_layers_are_refused(digits):
    class Custom(nnx.Module):
        pass

    with pytest.raises(TypeError, match=r"expected an MLP or LogisticRegression, got Custom"):
        compress.fold(Custom(), digits)
