"""Synchronous CPU dispatch is chosen where a process only answers, and only before JAX starts."""

import json
import os
import subprocess
import sys

from mlkit.tools import kernel

PROBE = """
import json, sys
import jax
import mlkit.infer.dispatch as d
if sys.argv[1] == "after-start":
    jax.numpy.ones(1).block_until_ready()
print(json.dumps({"sync": d.prefer_sync_dispatch(), "async": jax.config.values["jax_cpu_enable_async_dispatch"]}))
"""


def probe(when: str, **env) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, when], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_fresh_process_switches_to_synchronous_dispatch():
    assert probe("before-start") == {"sync": True, "async": False}


def test_once_jax_has_started_nothing_changes():
    assert probe("after-start") == {"sync": False, "async": True}


def test_the_switch_can_be_turned_off():
    assert probe("before-start", MLKIT_SYNC_DISPATCH="0") == {"sync": False, "async": True}


def test_the_kernel_runs_the_switch_before_any_cell(tmp_path):
    folder = kernel.install(prefix=str(tmp_path))
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["display_name"] == "Python (mlkit)" and spec["argv"][0] == sys.executable
    startup = [a for a in spec["argv"] if a.startswith("--InteractiveShellApp.exec_lines=")]
    assert startup == [f"--InteractiveShellApp.exec_lines={kernel.STARTUP}"]
    code = startup[0].split("=", 1)[1] + "\nimport jax; print(jax.config.values['jax_cpu_enable_async_dispatch'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
