"""``python -m mlkit kernel``: set up this environment's Jupyter for the lessons.

It registers the "Python (mlkit)" kernel: ipykernel's own, plus one line run at
start-up, before any notebook cell: synchronous CPU dispatch
(:mod:`mlkit.infer.dispatch`), so a frozen predictor in a notebook answers one
example in about 14 µs instead of about 80 µs. ``MLKIT_SYNC_DISPATCH=0`` in the
environment of JupyterLab keeps JAX's default.

It also writes JupyterLab's own settings files into the environment (not into
the user's home, and without patching JupyterLab): no news or update pop-ups
over the first lesson, arrow keys that reach a focused dropdown of a dashboard,
and the mlkit kernel as the default for new notebooks (the lessons name it in
their metadata already).
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


# JupyterLab reads settings/overrides.json from its application directory as new defaults for every user of
# this environment; the server reads etc/jupyter/jupyter_server_config.json (the files in its .d folder
# only list server extensions, measured: a kernel default there is ignored).
# In command mode JupyterLab takes the arrow keys from a focused dropdown of a dashboard to move between cells
# (ipywidgets issue 3912): the same shortcuts again, for every focused element but a <select>, keep them for
# the dropdown. A learner's own shortcut settings replace these.
COMMAND_MODE = ".jp-Notebook.jp-mod-commandMode:not(.jp-mod-readWrite) :focus"
ARROW_COMMANDS = {
    "ArrowDown": "notebook:move-cursor-down",
    "ArrowUp": "notebook:move-cursor-up",
    "Shift ArrowDown": "notebook:extend-marked-cells-below",
    "Shift ArrowUp": "notebook:extend-marked-cells-above",
}
LAB_OVERRIDES: dict[str, dict] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/shortcuts-extension:shortcuts": {
        "shortcuts": [
            shortcut
            for keys, command in ARROW_COMMANDS.items()
            for shortcut in (
                {"command": command, "keys": [keys], "selector": COMMAND_MODE, "disabled": True},
                {"command": command, "keys": [keys], "selector": f"{COMMAND_MODE}:not(select)"},
            )
        ]
    },
}
# nbgrader (the grade extra, for teachers: python -m mlkit grade) registers a lab extension and four server
# extensions in the environment; a learner sees none of its panels, and the teacher needs only its command line.
NBGRADER_SERVER = ("formgrader", "validate_assignment", "assignment_list", "course_list")
SERVER_CONFIG: dict[str, dict] = {
    "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    "MultiKernelManager": {"default_kernel_name": NAME},
    "ServerApp": {"jpserver_extensions": {f"nbgrader.server_extensions.{name}": False for name in NBGRADER_SERVER}},
}
PAGE_CONFIG: dict[str, dict] = {"disabledExtensions": {"@jupyter/nbgrader": True}}


def install_lab_settings(prefix: str = sys.prefix) -> list[Path]:
    """Write JupyterLab's overrides and the server's config into ``prefix`` (merged into what is there);
    returns the files written."""
    files: dict[Path, dict[str, dict]] = {
        Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json": LAB_OVERRIDES,
        Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.json": SERVER_CONFIG,
        Path(prefix) / "etc" / "jupyter" / "labconfig" / "page_config.json": PAGE_CONFIG,
    }
    for path, settings in files.items():
        current = json.loads(path.read_text()) if path.is_file() else {}
        for section, values in settings.items():
            current[section] = {**current.get(section, {}), **values}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=1) + "\n")
    return list(files)


def main() -> int:
    try:
        folder = install()
    except ModuleNotFoundError as e:  # the Jupyter parts are an optional extra
        print(
            f"error: {e.name} is not installed: the kernel needs the notebooks extra (pip install -e '.[notebooks]' "
            f"in the kit's folder).",
            file=sys.stderr,
        )
        return 2
    print(f"installed the {DISPLAY_NAME!r} kernel ({NAME}) in {folder}")
    for path in install_lab_settings():
        print(f"wrote {path}")
    return 0
