import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mlkit

QUICK = dict(epochs=3, progress=False)


def params(model):
    """Every array of the model's state (random-key arrays as their raw data)."""
    state = mlkit.train.checkpoint._flat_state(model)[0].values()
    return [
        np.asarray(jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a) for a in state
    ]


def test_checkpoint_restores_model_and_history_after_a_crash(digits, tmp_path):
    path = tmp_path / "run.npz"
    model = mlkit.MLP(64, (32,), 10, dropout=0.2, batch_norm=True, seed=0)

    def crash_after_two(history):
        if history.epochs == 2:
            raise RuntimeError("the kernel died")

    with pytest.raises(RuntimeError, match="kernel died"):
        mlkit.fit(model, digits, mlkit.TrainConfig(**QUICK), callbacks=[mlkit.Checkpoint(path, model), crash_after_two])
    fresh = mlkit.MLP(64, (32,), 10, dropout=0.2, batch_norm=True, seed=1)  # other initial weights
    history = mlkit.load_checkpoint(path, fresh)
    assert history.epochs == 2 and len(history.val_loss) == 2
    for a, b in zip(params(model), params(fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    assert mlkit.evaluate(fresh, digits.val)[0] == pytest.approx(history.val_loss[-1], rel=1e-5)
    mlkit.fit(fresh, digits, mlkit.TrainConfig(**QUICK))  # and training goes on from there


def test_a_different_architecture_is_refused_and_left_alone(digits, tmp_path):
    path = mlkit.save_checkpoint(tmp_path / "m.npz", mlkit.MLP(64, (32,), 10))
    other = mlkit.MLP(64, (16,), 10, seed=3)
    before = params(other)
    with pytest.raises(ValueError, match=r"shape .*Build the model as it was"):
        mlkit.load_checkpoint(path, other)
    with pytest.raises(ValueError, match="different architecture"):
        mlkit.load_checkpoint(path, mlkit.MLP(64, (32, 32), 10))
    for a, b in zip(before, params(other), strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupted_or_foreign_files_get_a_clear_error(tmp_path):
    model = mlkit.MLP(64, (8,), 10)
    good = mlkit.save_checkpoint(tmp_path / "good.npz", model)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    for path in (truncated, foreign):
        with pytest.raises(ValueError, match="not a readable mlkit checkpoint"):
            mlkit.load_checkpoint(path, model)
    with pytest.raises(FileNotFoundError):
        mlkit.load_checkpoint(tmp_path / "missing.npz", model)


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = mlkit.MLP(64, (8,), 10)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", model)
    saved = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(mlkit.train.checkpoint.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        mlkit.save_checkpoint(path, mlkit.MLP(64, (8,), 10, seed=5))
    assert path.read_bytes() == saved and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def rewrite(path, **changes):
    """The checkpoint at ``path`` with some of its members replaced, as anyone who can edit the file can."""
    with np.load(path, allow_pickle=False) as f:
        members = {name: f[name] for name in f.files}
    members.update(changes)
    np.savez(path, **members)


@pytest.mark.parametrize(
    "history, message",
    [
        ({"status": 5, "train_loss": "abc"}, r"the history's train_loss should be a list of numbers"),
        ({"status": 5}, r"the history's status should be one of \['running', 'completed'"),
        ({"train_loss": [0.1], "best_epoch": 7}, r"history's best_epoch should be null or an epoch from 1 to 1, got 7"),
        ({"compile_time": -1}, r"the history's compile_time should be seconds"),
        ({"pickle": "cos\nsystem"}, r"its history should be an object with some of the fields"),
    ],
)
def test_the_history_is_checked_field_by_field(tmp_path, history, message):
    model = mlkit.MLP(64, (8,), 10)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", model)
    rewrite(path, __history__=np.array(json.dumps(history)))
    with pytest.raises(ValueError, match=rf"c.npz is not an intact mlkit checkpoint: .*{message}"):
        mlkit.load_checkpoint(path, model)


def test_a_diverged_history_still_loads(tmp_path):
    history = mlkit.History(train_loss=[0.5, float("nan")], status="diverged", message="loss became NaN")
    path = mlkit.save_checkpoint(tmp_path / "c.npz", mlkit.MLP(64, (8,), 10), history)
    back = mlkit.load_checkpoint(path, mlkit.MLP(64, (8,), 10))
    assert back.status == "diverged" and np.isnan(back.train_loss[1])


def test_non_finite_weights_are_refused_unless_asked_for(tmp_path):
    broken = mlkit.MLP(64, (8,), 10)
    broken.layers[0].kernel[...] = broken.layers[0].kernel[...].at[0, 0].set(jnp.nan)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", broken)
    fresh = mlkit.MLP(64, (8,), 10, seed=4)
    before = params(fresh)
    with pytest.raises(
        ValueError, match=r"c.npz: \['layers/0/kernel/value'\] hold NaN or infinity.*allow_nonfinite=True"
    ):
        mlkit.load_checkpoint(path, fresh)
    for a, b in zip(before, params(fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    mlkit.load_checkpoint(path, fresh, allow_nonfinite=True)
    assert np.isnan(np.asarray(fresh.layers[0].kernel[...])[0, 0])


def test_the_manifest_catches_an_altered_array(tmp_path):
    model = mlkit.MLP(64, (8,), 10)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", model)
    with np.load(path, allow_pickle=False) as f:
        kernel = f["layers/0/kernel/value"] + 1.0
    rewrite(path, **{"layers/0/kernel/value": kernel})
    with pytest.raises(ValueError, match=r"\['layers/0/kernel/value'\] differ from their shape, dtype or sha256"):
        mlkit.load_checkpoint(path, model)


def test_sizes_are_capped_before_reading_and_unpacking(tmp_path):
    model = mlkit.MLP(64, (8,), 10)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", model)
    with pytest.raises(ValueError, match=r"c.npz is [\d,]+ bytes, more than the 1,000 allowed \(max_bytes\)"):
        mlkit.load_checkpoint(path, model, max_bytes=1000)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, zeros=np.zeros(10_000_000, np.float32))  # 40 MB of zeros in a few kB
    with pytest.raises(ValueError, match=r"it unpacks to 40,000,128 bytes, more than the 1,000,000 allowed"):
        mlkit.load_checkpoint(bomb, model, max_bytes=1_000_000)


def test_a_header_that_declares_a_huge_array_is_refused_before_numpy_allocates_it(tmp_path):
    model = mlkit.MLP(64, (8,), 10)
    path = mlkit.save_checkpoint(tmp_path / "c.npz", model)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 40,)})
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["layers/0/kernel/value.npy"] = header.getvalue() + bytes(64)  # 4 TiB declared in a few bytes
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"declares an array of shape \(1099511627776,\).*holds 64 bytes"):
        mlkit.load_checkpoint(path, model)


def test_a_history_that_learned_nothing_loads(tmp_path):
    history = mlkit.History(train_loss=[2.3], val_loss=[2.3], status="learned_nothing", message="at chance")
    path = mlkit.save_checkpoint(tmp_path / "c.npz", mlkit.MLP(64, (8,), 10), history)
    assert mlkit.load_checkpoint(path, mlkit.MLP(64, (8,), 10)).status == "learned_nothing"
