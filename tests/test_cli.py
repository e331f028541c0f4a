import io
import shutil
import subprocess
import sys
import zipfile

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
    named = tmp_path / "named.csv"  # a header of names and a byte-order mark, as training accepts them
    np.savetxt(named, rows, delimiter=",", fmt="%g", header=",".join(f"p{i}" for i in range(64)), comments="")
    named.write_bytes(b"\xef\xbb\xbf" + named.read_bytes())
    done = run("predict", str(artifact_dir), str(named))
    assert done.returncode == 0 and done.stdout.split() == [str(label) for label in expected], done.stderr


def test_a_bad_artifact_path_exits_with_2_and_says_why(tmp_path):
    (tmp_path / "rows.csv").write_text("0," * 63 + "0\n")
    done = run("predict", str(tmp_path / "no-such-model"), str(tmp_path / "rows.csv"))
    assert done.returncode == 2
    assert "error: " in done.stderr and "no-such-model" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_directory_that_is_not_an_artifact_exits_with_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(tmp_path / "rows.csv")]) == 2
    assert "metadata.json" in one_error_line(capsys)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture
def no_training(monkeypatch):
    """Options are checked before any training starts: fit must never be reached."""

    def refuse(*args, **kwargs):
        raise AssertionError("fit ran before the options were checked")

    monkeypatch.setattr(mlkit, "fit", refuse)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--hidden", "0"], "(0,)"),
        (["--hidden", "64", "-5"], "(64, -5)"),
        (["--out", "/proc/no-such/dir"], "/proc"),
        (["--out", "{file}/sub"], "not a directory"),
        (["--out", "{file}"], "is a file"),
        (["--label", "3"], "--label"),
        (["--model", "convnet", "--hidden", "8"], "--hidden"),
        (["--data", "moons", "--model", "convnet"], "image"),
        (["--lr", "nan"], "learning_rate"),
        (["--epochs", "0"], "epochs"),
        (["--data", "no-such.csv"], "no-such.csv"),
    ],
)
def test_train_user_errors_are_one_line_and_exit_2(options, message, tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("not a directory")
    options = [o.replace("{file}", str(tmp_path / "file")) for o in options]
    assert main(["train", *options]) == 2
    assert message in one_error_line(capsys)


def test_a_diverged_run_exits_non_zero_and_saves_nothing_unless_asked(tmp_path, capsys):
    out = tmp_path / "model"
    wreck = ["train", "--hidden", "16", "--epochs", "2", "--lr", "1e8", "--out", str(out)]
    assert main(wreck) == 1
    captured = capsys.readouterr()
    assert "Training diverged in epoch" in captured.out and "lower learning rate" in captured.out
    assert f"nothing was saved to {out}; --save-anyway saves it" in captured.err
    assert not out.exists()
    assert main([*wreck, "--save-anyway"]) == 1
    assert mlkit.load_predictor(out).predict(np.zeros((1, 64))).shape == (1,)


@pytest.mark.parametrize("epochs", [0, 2])
def test_ctrl_c_keeps_the_saved_model_and_exits_130(artifact_dir, tmp_path, monkeypatch, capsys, epochs):
    """An interrupted run saves nothing: neither an untrained model nor a half-trained one replaces the one there."""
    out = tmp_path / "good"
    shutil.copytree(artifact_dir, out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    history = mlkit.train.History(
        train_loss=[1.0] * epochs,
        train_acc=[0.5] * epochs,
        val_loss=[1.0] * epochs,
        val_acc=[0.5] * epochs,
        epoch_time=[0.1] * epochs,
        train_time=[0.1] * epochs,
        status="interrupted",
    )
    monkeypatch.setattr(mlkit, "fit", lambda *a, **k: history)
    assert main(["train", "--hidden", "8", "--epochs", "5", "--out", str(out)]) == 130
    assert f"interrupted, so nothing was saved to {out}" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_a_run_that_ends_at_chance_exits_1_and_saves_nothing_unless_asked(tmp_path, capsys):
    out = tmp_path / "model"
    wreck = ["train", "--optimizer", "momentum", "--lr", "0.3", "--epochs", "60", "--hidden", "64", "64"]
    assert main([*wreck, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "status='diverged'" in captured.out and "no better than chance" in captured.out
    assert f"nothing was saved to {out}; --save-anyway saves it" in captured.err
    assert not out.exists()
    assert main([*wreck, "--out", str(out), "--save-anyway"]) == 1
    assert mlkit.load_predictor(out).predict(np.zeros((1, 64))).shape == (1,)


def test_out_into_a_directory_that_is_not_an_artifact_is_refused_before_training(tmp_path, capsys, no_training):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "not a predictor artifact" in one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_label_picks_a_csv_column_by_number_too(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    rows = np.column_stack([(x[:, 0] > 0).astype(int), x])  # the label first, not last
    np.savetxt(tmp_path / "first.csv", rows, delimiter=",", fmt="%g", header="kind,a,b,c", comments="")
    assert main(["train", "--data", str(tmp_path / "first.csv"), "--label", "0", "--epochs", "2", "--hidden", "4"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def written(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: np.savez(d / "in.npz", y=np.zeros(3)) or d / "in.npz", "named 'x'"),
        (lambda d: d, "directory"),
        (lambda d: d / "missing.csv", "missing"),
        (lambda d: written(d / "t.csv", b"a,b\nc,d\n"), "CSV of numbers"),
        (lambda d: written(d / "bad.npz", b"PK\x03\x04junk"), "readable .npz"),
        (lambda d: written(d / "empty.csv", b""), "no rows"),
    ],
)
def test_predict_input_errors_are_one_line_and_exit_2(artifact_dir, tmp_path, capsys, make_input, message):
    source = tmp_path / "inputs"
    source.mkdir()
    assert main(["predict", str(artifact_dir), str(make_input(source))]) == 2
    assert message in one_error_line(capsys)


def test_load_against_no_server_is_one_error_line(capsys):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["load", f"http://127.0.0.1:{port}", "--duration", "0.2"]) == 2
    assert "server" in one_error_line(capsys)


def test_bench_checks_its_output_path_first(tmp_path, capsys):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 2
    assert "directory" in one_error_line(capsys)


def test_serve_refuses_batching_options_that_no_batching_would_ignore(artifact_dir, capsys):
    assert main(["serve", str(artifact_dir), "--no-batching", "--max-batch", "8"]) == 2
    assert "--max-batch" in one_error_line(capsys)


class Reached(Exception):
    """What a patched ``fit`` or ``run`` raises with the config it was given, so a test reads it without training."""


def test_train_options_and_their_defaults_are_train_configs(monkeypatch):
    def caught(model, data, config):
        raise Reached(config)

    monkeypatch.setattr(mlkit, "fit", caught)
    with pytest.raises(Reached) as reached:
        main(["train"])
    assert reached.value.args[0] == mlkit.TrainConfig()  # --epochs defaulted to 30, TrainConfig to 20
    options = ["--lr", "0.01", "--optimizer", "momentum", "--momentum", "0.5", "--patience", "3", "--no-shuffle"]
    with pytest.raises(Reached) as reached:
        main(["train", *options])
    expected = mlkit.TrainConfig(learning_rate=0.01, optimizer="momentum", momentum=0.5, patience=3, shuffle=False)
    assert reached.value.args[0] == expected


def test_serve_options_are_settings_and_a_background_server_passes_them_so(monkeypatch, tmp_path):
    from mlkit.serve import Server, Settings

    def caught(settings):
        raise Reached(settings)

    monkeypatch.setattr(mlkit.serve, "run", caught)
    for options in ({}, {"max_batch": 8, "fixed_shape": False, "access_log": True, "shutdown_timeout_s": 2.5}):
        command = Server(tmp_path, **options).command()  # port 0: any free port
        assert command[2:5] == ["mlkit", "serve", str(tmp_path)]
        with pytest.raises(Reached) as reached:
            main(command[3:])
        assert reached.value.args[0] == Settings(tmp_path, port=0, **options)
    assert "--shutdown-timeout" in command and "--no-fixed-shape" in command  # the names operators know


SLOW_GC = """
import gc, runpy, sys, time
import mlkit.train.loop as loop

record = loop._record


def slow_gc_after_the_first_epoch(*args):
    # From here on the process runs Python code inside a garbage-collection callback most of the time,
    # as it does now and then inside JAX's own (_xla_gc_callback): a KeyboardInterrupt raised there is
    # printed as "Exception ignored" and lost.
    if not gc.callbacks or gc.callbacks[-1] is not pause:
        gc.callbacks.append(pause)
        gc.set_threshold(50)
        print("first epoch done", file=sys.stderr, flush=True)
    record(*args)


def pause(phase, info):
    time.sleep(0.005)


loop._record = slow_gc_after_the_first_epoch
sys.argv = ["mlkit", *sys.argv[1:]]
runpy.run_module("mlkit", run_name="__main__")
"""


def test_a_real_ctrl_c_always_stops_training_exits_130_and_overwrites_nothing(artifact_dir, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "good"
    shutil.copytree(artifact_dir, out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    args = ["train", "--hidden", "8", "--epochs", "100000", "--no-progress", "--out", str(out)]
    child = subprocess.Popen([sys.executable, "-c", SLOW_GC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, deadline = b"", time.monotonic() + 120
    while b"first epoch done" not in seen and child.poll() is None and time.monotonic() < deadline:
        seen += os.read(child.stderr.fileno(), 4096)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    try:
        stdout, stderr = child.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("Ctrl-C was lost: training went on")
    assert child.returncode == 130, stderr.decode()[-2000:]
    assert "status='interrupted'" in stdout.decode() and b"nothing was saved" in stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_predict_refuses_an_npz_whose_header_declares_more_than_it_holds(artifact_dir, tmp_path, capsys):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 1 << 20)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())  # 4 TiB of float32 declared, nothing behind it
    assert main(["predict", str(artifact_dir), str(tmp_path / "bomb.npz")]) == 2
    assert "declares an array" in one_error_line(capsys)
