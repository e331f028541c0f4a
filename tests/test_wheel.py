"""A built wheel works outside the checkout: the data travels inside it, and so do the type hints.

The wheel is installed without its dependencies into a fresh virtual environment
in a temporary directory; jax, flax and the rest come from this environment's
site-packages through a ``.pth`` line (so the test needs no network and takes
seconds). That line adds the directory as a plain path, so the editable install
of this checkout that lives there is not activated: ``mlkit`` can only come from
the wheel.
"""

import importlib.metadata
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

OUTSIDE = """
import sys
from pathlib import Path
import mlkit

here = Path(mlkit.__file__).resolve()
assert here.is_relative_to(Path(sys.prefix).resolve()), f"mlkit came from {here}, not the fresh environment"
data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, (32,), data.num_classes, seed=0)
history = mlkit.fit(model, data, mlkit.TrainConfig(epochs=3, progress=False))
predictor = mlkit.freeze(model, data)
accuracy = float((predictor.predict(data.test.raw_x) == [data.labels[i] for i in data.test.y]).mean())
print(here, mlkit.__version__, history.status, f"{accuracy:.3f}")
"""


def test_the_wheel_carries_the_data_and_the_type_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mlkit/data/sets/digits.npz", "mlkit/data/sets/mnist5k.npz", "mlkit/py.typed"} <= names
    assert {"mlkit/train/loop.py", "mlkit/infer/artifact.py", "mlkit/lessons/widgets.py"} <= names
    assert not any(name.startswith(("tests/", "notebooks/", "datasets/")) for name in names)


def test_installed_wheel_loads_digits_trains_and_freezes_outside_the_checkout(wheel, tmp_path):
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = subprocess.run(
        [str(python), "-c", OUTSIDE],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLKIT_COMPILATION_CACHE": "0"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    where, version, status, accuracy = done.stdout.split()
    assert where.startswith(str(env)) and status == "completed"
    assert version == importlib.metadata.version("mlkit-course")
    assert float(accuracy) > 0.8  # three epochs of a small MLP on digits: a real model, not a stub
