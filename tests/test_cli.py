import subprocess
import sys

import numpy as np
import pytest

import mlkit
from mlkit.__main__ import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlkit", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits-model"
    done = run("train", "--data", "digits", "--hidden", "32", "--epochs", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and f"saved the frozen predictor to {out}" in done.stdout
    return out


def test_train_then_predict_from_a_csv(artifact_dir, digits, tmp_path):
    rows = digits.test.raw_x[:12]
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",", fmt="%g")
    done = run("predict", str(artifact_dir), str(tmp_path / "rows.csv"))
    assert done.returncode == 0, done.stderr
    expected = mlkit.load_predictor(artifact_dir).predict(rows)
    assert done.stdout.split() == [str(label) for label in expected]
    assert np.mean(expected == digits.test.y[:12]) > 0.5  # 3 epochs: a real, if rough, classifier


def test_a_bad_artifact_path_exits_with_2_and_says_why(tmp_path):
    (tmp_path / "rows.csv").write_text("0," * 63 + "0\n")
    done = run("predict", str(tmp_path / "no-such-model"), str(tmp_path / "rows.csv"))
    assert done.returncode == 2
    assert "error: No predictor artifact at" in done.stderr and "no-such-model" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_directory_that_is_not_an_artifact_exits_with_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(tmp_path / "rows.csv")]) == 2
    assert f"{tmp_path} is not a predictor artifact: it has no metadata.json" in capsys.readouterr().err
