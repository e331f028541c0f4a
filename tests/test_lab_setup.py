"""JupyterLab as `make lab` starts it: this environment's settings, no news or update pop-ups, the mlkit kernel."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import pytest

from mlkit.tools import kernel


def test_the_overrides_are_valid_jupyterlab_settings():
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    for plugin, values in kernel.LAB_OVERRIDES.items():
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        jsonschema.validate(values, schema)  # a misspelt key fails: the schemas allow no extra properties
        assert schema.get("additionalProperties") is False


def test_the_shortcuts_given_back_to_dropdowns_are_jupyterlabs_own():
    """Each arrow shortcut disabled is one JupyterLab defines (a renamed one would leave the dropdowns' keys taken),
    and each comes back for everything but a <select>."""
    tracker = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas" / "@jupyterlab" / "notebook-extension"
    defaults = json.loads((tracker / "tracker.json").read_text())["jupyter.lab.shortcuts"]
    key = lambda s: (s["command"], tuple(s["keys"]), s["selector"])
    given = kernel.LAB_OVERRIDES["@jupyterlab/shortcuts-extension:shortcuts"]["shortcuts"]
    disabled = [s for s in given if s.get("disabled")]
    assert disabled and {key(s) for s in disabled} <= {key(s) for s in defaults}
    assert {key(s) for s in given if not s.get("disabled")} == {
        (c, k, f"{sel}:not(select)") for c, k, sel in map(key, disabled)
    }


def test_without_jupyter_the_kernel_command_says_which_extra_to_install(monkeypatch, capsys):
    def no_ipykernel(prefix=sys.prefix):
        raise ModuleNotFoundError("No module named 'ipykernel'", name="ipykernel")

    monkeypatch.setattr(kernel, "install", no_ipykernel)
    assert kernel.main() == 2
    assert "error: ipykernel is not installed: the kernel needs the notebooks extra" in capsys.readouterr().err


def test_install_writes_the_files_into_the_prefix_and_keeps_what_was_there(tmp_path):
    config = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ServerApp": {"port": 9999}, "LabApp": {"collaborative": True}}))
    written = kernel.install_lab_settings(str(tmp_path))
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "share/jupyter/lab/settings/overrides.json",
        "etc/jupyter/jupyter_server_config.json",
        "etc/jupyter/labconfig/page_config.json",
    }
    assert json.loads(written[0].read_text()) == kernel.LAB_OVERRIDES
    merged = json.loads(config.read_text())
    assert merged["ServerApp"]["port"] == 9999 and merged["LabApp"]["collaborative"] is True
    assert merged["LabApp"]["news_url"] is None and merged["MultiKernelManager"]["default_kernel_name"] == "mlkit"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab's server from this environment, as `make env` set it up, on a free port of 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path_factory.mktemp("lab")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
               "--IdentityProvider.token=", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
               "--allow-root"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/api/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(20)


def test_lab_starts_with_no_news_and_no_update_check(lab):
    settings = httpx.get(f"{lab}/lab/api/settings/@jupyterlab/apputils-extension:notification").json()
    defaults = {key: value["default"] for key, value in settings["schema"]["properties"].items()}  # overrides land here
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False


def test_lab_offers_the_mlkit_kernel_first(lab):
    specs = httpx.get(f"{lab}/api/kernelspecs").json()
    assert specs["default"] == kernel.NAME and kernel.NAME in specs["kernelspecs"]


def test_lab_shows_learners_no_nbgrader_panels(lab):
    """nbgrader (the teacher's grading tool) is installed beside the lab; its extensions are off for learners."""
    page = httpx.get(f"{lab}/lab").text
    config = json.loads(page.split('id="jupyter-config-data" type="application/json">')[1].split("</script>")[0])
    assert "@jupyter/nbgrader" in config["disabledExtensions"]
    assert httpx.get(f"{lab}/formgrader").status_code == 404
