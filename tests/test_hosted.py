"""The hosted path, offline: a fresh Python with only the wheel's dependencies runs lesson 00 from its install cell.

On Colab or Binder a lesson's first cell installs the kit when ``import mlkit``
fails. Here the same happens as far as it can without the services: the wheel is
built, a new virtual environment gets every dependency of ``mlkit-course[notebooks]``
but not the kit itself, and nbval runs lesson 00 in a kernel of that environment
with ``MLKIT_INSTALL`` pointing the install cell at the local wheel. What stays
untested is the hosted services themselves (their images, the package index).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "00_tour.ipynb"


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return done


def test_every_lesson_starts_with_the_install_cell():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert "import mlkit\nexcept ImportError:" in first and "%pip install" in first, path.name


def test_lesson_00_runs_in_a_fresh_environment_through_its_install_cell(wheel, tmp_path):
    env = tmp_path / "fresh"
    run(sys.executable, "-m", "venv", env)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[notebooks]")  # the dependencies come with it...
    run(python, "-m", "pip", "uninstall", "--yes", "--quiet", "mlkit-course")  # ...and the kit goes again
    found = run(python, "-c", "import importlib.util; print(importlib.util.find_spec('mlkit'))", cwd=tmp_path)
    assert found.stdout.strip() == "None"  # (run outside the checkout, whose mlkit/ folder would be found)

    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps({**spec, "display_name": "fresh"}))
    environment = {
        "PATH": f"{env / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "MLKIT_INSTALL": f"{wheel}[notebooks]",
        "MLKIT_COMPILATION_CACHE": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-kernel-name", "fresh",
         str(LESSON)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    where = run(python, "-c", "import mlkit; print(mlkit.__file__)", cwd=tmp_path).stdout.strip()
    assert where.startswith(str(env)), where  # the install cell put the wheel's kit into the fresh environment
