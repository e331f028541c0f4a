"""``python -m mlkit doctor``: what is wrong with this set-up, in plain words, and what to do about it.

Each check returns a :class:`Check`; :func:`checks` runs them all, :func:`main`
prints one line per check and returns 0 when every one is OK, 1 otherwise.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlkit.data import shipped

KERNEL = "mlkit"
WIDGET_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
REGISTER = f"{sys.executable} -m mlkit kernel  (or: make env)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"{'OK' if self.ok else 'PROBLEM':8} {self.name:9} {self.detail}"
        return line + (f"\n{'':18} fix: {self.fix}" if self.fix else "")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, f"Python {version} ({sys.executable})", "" if ok else "mlkit needs Python 3.10 or newer")


def nvidia_gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def check_jax() -> Check:
    import jax

    devices = jax.devices()
    platforms = sorted({d.platform for d in devices})
    detail = f"jax {jax.__version__}, jaxlib {_version('jaxlib')}, devices: {len(devices)} x {'/'.join(platforms)}"
    if nvidia_gpu_present() and "gpu" not in platforms and "cuda" not in platforms:
        return Check(
            "jax",
            False,
            detail + "; this machine has an NVIDIA GPU that JAX does not use",
            "install JAX's CUDA build into this environment: pip install -e '.[cuda]'",
        )
    return Check("jax", True, detail)


def check_widgets() -> Check:
    """ipywidgets, the matching jupyterlab_widgets, and its JupyterLab extension where JupyterLab looks."""
    from packaging.requirements import Requirement

    widgets, lab_widgets = _version("ipywidgets"), _version("jupyterlab_widgets")
    fix = "pip install -U ipywidgets jupyterlab_widgets, then restart JupyterLab"
    if widgets is None or lab_widgets is None:
        missing = "ipywidgets" if widgets is None else "jupyterlab_widgets"
        return Check("widgets", False, f"{missing} is not installed: sliders show as text, not as sliders", fix)
    wanted = [
        r
        for r in map(Requirement, importlib.metadata.requires("ipywidgets") or [])
        if r.name.lower().replace("-", "_") == "jupyterlab_widgets" and not r.marker
    ]
    if wanted and not wanted[0].specifier.contains(lab_widgets, prereleases=True):
        return Check(
            "widgets",
            False,
            f"jupyterlab_widgets {lab_widgets} does not match ipywidgets {widgets} "
            f"(it needs jupyterlab_widgets{wanted[0].specifier})",
            fix,
        )
    here = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
    try:
        from jupyter_core.paths import jupyter_path

        places = [Path(p) for p in jupyter_path("labextensions")]
    except ImportError:
        places = [here]
    found = [p for p in places if (p / WIDGET_EXTENSION / "package.json").is_file()]
    if not found:
        return Check(
            "widgets",
            False,
            f"JupyterLab's widget extension {WIDGET_EXTENSION} is not in {here}: "
            "notebooks show 'Loading widget...' instead of sliders",
            "pip install --force-reinstall jupyterlab_widgets, then restart JupyterLab",
        )
    return Check("widgets", True, f"ipywidgets {widgets}, jupyterlab_widgets {lab_widgets}, extension in {found[0]}")


def find_kernel(name: str = KERNEL) -> dict | None:
    """The kernel spec Jupyter would start for ``name`` (its argv and folder), or None."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return None
    return {"argv": spec.argv, "resource_dir": spec.resource_dir}


def check_kernel() -> Check:
    try:
        spec = find_kernel()
    except ImportError:
        return Check(
            "kernel",
            False,
            "Jupyter is not installed in this environment",
            "pip install -e '.[notebooks]'  (or: make lab)",
        )
    if spec is None:
        return Check("kernel", False, f"no Jupyter kernel named {KERNEL!r}: notebooks ask for one", REGISTER)
    python = spec["argv"][0]
    if Path(python).parent.absolute() != Path(sys.executable).parent.absolute():
        return Check(
            "kernel", False, f"the {KERNEL!r} kernel runs {python}, not this environment's {sys.executable}", REGISTER
        )
    return Check("kernel", True, f"{KERNEL!r} runs {python} ({spec['resource_dir']})")


def check_data() -> Check:
    problems = []
    for filename, expected, _ in shipped.SHIPPED.values():
        path = shipped.sets_dir() / filename
        if not path.is_file():
            problems.append(f"{filename} is missing")
        elif shipped.sha256(path) != expected:
            problems.append(f"{filename} has been altered (its sha256 differs)")
    if problems:
        return Check(
            "data",
            False,
            f"in {shipped.sets_dir()}: " + "; ".join(problems),
            "restore the shipped files: "
            + shipped.RESTORE
            + ("" if "MLKIT_DATASETS" not in os.environ else " (or unset MLKIT_DATASETS)"),
        )
    return Check("data", True, f"{', '.join(shipped.SHIPPED)} in {shipped.sets_dir()}, checksums match")


CHECKS = (check_python, check_jax, check_widgets, check_kernel, check_data)


def _run(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as e:  # a check that crashes is itself a finding, not a reason to stop
        name = check.__name__.removeprefix("check_")
        return Check(name, False, f"the check failed: {e!r}", "reinstall the environment: make clean && make env")


def checks() -> list[Check]:
    return [_run(check) for check in CHECKS]


def main() -> int:
    results = checks()
    for result in results:
        print(result)
    bad = sum(not r.ok for r in results)
    print("all good" if not bad else f"{bad} problem{'s' * (bad > 1)} found")
    return 0 if not bad else 1
