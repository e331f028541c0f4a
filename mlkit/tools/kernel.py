"""``python -m mlkit kernel``: register the "Python (mlkit)" Jupyter kernel of this environment.

The kernel is ipykernel's own, plus one line run at start-up, before any
notebook cell: synchronous CPU dispatch (:mod:`mlkit.infer.dispatch`), so a
frozen predictor in a notebook answers one example in about 14 µs instead of
about 80 µs. ``MLKIT_SYNC_DISPATCH=0`` in the environment of JupyterLab keeps
JAX's default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "mlkit"
DISPLAY_NAME = "Python (mlkit)"
STARTUP = "import mlkit.infer.dispatch; mlkit.infer.dispatch.prefer_sync_dispatch()"


def install(prefix: str = sys.prefix) -> Path:
    """Write the kernel spec into ``prefix`` (this environment by default); returns its folder."""
    from ipykernel.kernelspec import install as install_kernel

    folder = Path(install_kernel(kernel_name=NAME, display_name=DISPLAY_NAME, prefix=prefix))
    spec_file = folder / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"] = [*spec["argv"], f"--InteractiveShellApp.exec_lines={STARTUP}"]
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return folder


def main() -> int:
    folder = install()
    print(f"installed the {DISPLAY_NAME!r} kernel ({NAME}) in {folder}")
    return 0
