import subprocess
import sys
from pathlib import Path

import jax
import pytest

import mlkit

# Catch (n, 1) vs (n,) broadcasting mistakes, as equinox's test suite does.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def digits():
    return mlkit.load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def trained(digits):
    """A small MLP trained briefly on digits: enough for inference tests."""
    model = mlkit.MLP(digits.num_features, hidden=(64,), num_classes=digits.num_classes, seed=0)
    mlkit.fit(model, digits, mlkit.TrainConfig(epochs=5, progress=False))
    return model


@pytest.fixture
def patch_epochs(monkeypatch):
    """``patch_epochs(wrap)`` makes fit's compiled training epoch call ``wrap(n, run, *args)`` instead of
    ``run(*args)``, ``n`` counting the calls from 1: a test can make chosen epochs blow up or be interrupted."""

    def patch(wrap):
        real_compiled, calls = mlkit.train.loop.compiled, {"n": 0}

        def patched(fn, static, *args):
            run, seconds = real_compiled(fn, static, *args)
            if fn is not mlkit.train.train_epoch:
                return run, seconds

            def counted(*a):
                calls["n"] += 1
                return wrap(calls["n"], run, *a)

            return counted, seconds

        monkeypatch.setattr(mlkit.train.loop, "compiled", patched)

    return patch


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The kit built as a wheel (pip wheel, no dependencies), as a release would be."""
    out = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parent.parent
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("*.whl")
    return found
