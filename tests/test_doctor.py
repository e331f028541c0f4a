import shutil

import pytest

from mlkit.__main__ import main
from mlkit.data import shipped
from mlkit.tools import doctor


def test_all_ok_here(capsys):
    results = {check.name: check for check in doctor.checks()}
    assert set(results) == {"python", "jax", "widgets", "kernel", "data"}
    if doctor.nvidia_gpu_present():  # a GPU machine without the CUDA build is a real finding, not a test failure
        results.pop("jax")
    assert all(check.ok for check in results.values()), "\n".join(map(str, results.values()))


def test_command_prints_one_line_per_check(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: False)
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:5]] == [
        ["OK", "python"],
        ["OK", "jax"],
        ["OK", "widgets"],
        ["OK", "kernel"],
        ["OK", "data"],
    ]
    assert lines[-1] == "all good"


@pytest.fixture
def broken_data(tmp_path, monkeypatch):
    for filename, _, _ in shipped.SHIPPED.values():
        shutil.copy(shipped.SETS_DIR / filename, tmp_path / filename)
    (tmp_path / "digits.npz").write_bytes((tmp_path / "digits.npz").read_bytes() + b"tampered")
    (tmp_path / "mnist5k.npz").unlink()
    monkeypatch.setenv("MLKIT_DATASETS", str(tmp_path))
    return tmp_path


def test_altered_and_missing_data_are_reported(broken_data, capsys):
    check = doctor.check_data()
    assert not check.ok
    assert "digits.npz has been altered" in check.detail and "mnist5k.npz is missing" in check.detail
    assert "mlkit/data/sets" in check.fix
    assert doctor.main() == 1
    out = capsys.readouterr().out
    assert "PROBLEM  data" in out and out.rstrip().endswith("1 problem found")


def test_missing_kernel_is_reported(monkeypatch):
    monkeypatch.setattr(doctor, "find_kernel", lambda name=doctor.KERNEL: None)
    check = doctor.check_kernel()
    assert not check.ok and "no Jupyter kernel named 'mlkit'" in check.detail
    assert "-m mlkit kernel" in check.fix


def test_kernel_of_another_environment_is_reported(monkeypatch):
    monkeypatch.setattr(
        doctor,
        "find_kernel",
        lambda name=doctor.KERNEL: {
            "argv": ["/somewhere/else/bin/python", "-m", "ipykernel_launcher"],
            "resource_dir": "/somewhere",
        },
    )
    check = doctor.check_kernel()
    assert not check.ok and "/somewhere/else/bin/python" in check.detail


def test_cpu_only_jax_on_a_gpu_machine_is_reported(monkeypatch):
    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: True)
    check = doctor.check_jax()
    if check.ok:
        pytest.skip("this JAX does use a GPU")
    assert "NVIDIA GPU that JAX does not use" in check.detail and "pip install -e '.[cuda]'" in check.fix


def test_mismatched_widget_packages_are_reported(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda p: "1.1.0" if p == "jupyterlab_widgets" else real(p))
    check = doctor.check_widgets()
    assert not check.ok and "jupyterlab_widgets 1.1.0 does not match ipywidgets" in check.detail


def test_a_crashing_check_is_a_problem_not_a_crash(monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_python, broken))
    results = doctor.checks()
    assert results[0].ok and not results[1].ok and "boom" in results[1].detail
