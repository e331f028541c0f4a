import jax
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
