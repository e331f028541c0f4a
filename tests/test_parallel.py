"""Data-parallel training: same numbers as one device, clear errors, two processes agree.

The device count is fixed when JAX starts, and this pytest process already runs
JAX on one CPU device, so the multi-device checks run in a subprocess with four
forced CPU devices and report back as JSON. Every subprocess has a timeout.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlkit.train import parallel

ROOT = Path(__file__).resolve().parent.parent

FOUR_DEVICES = r"""
import json, warnings
warnings.simplefilter("error")
import jax
jax.config.update("jax_numpy_rank_promotion", "raise")
import numpy as np
import mlkit
from mlkit import train
from mlkit.train import parallel
from mlkit.train.compiled import compiled, stats
from flax import nnx

data = mlkit.load_dataset("digits", seed=0)
mesh = parallel.data_mesh()
config = mlkit.TrainConfig(epochs=3, batch_size=64, progress=False)  # as in examples/two_hosts.py
model = lambda **kw: mlkit.MLP(data.num_features, hidden=(32,), num_classes=data.num_classes, seed=0, **kw)
out = {"devices": jax.device_count()}

# One device first, then the mesh with the same shapes: the executable cache must tell them apart.
for name, kw in (("plain", {}), ("dropout", {"dropout": 0.2})):
    one, many = model(**kw), model(**kw)
    out[name] = [mlkit.fit(one, data, config).__dict__, mlkit.fit(many, data, config, mesh=mesh).__dict__]
    pairs = zip(jax.tree.leaves(nnx.state(one, nnx.Param)), jax.tree.leaves(nnx.state(many, nnx.Param)))
    out[name + "_params"] = [float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in pairs]
many = model()
out["again"] = mlkit.fit(many, data, config, mesh=mesh).__dict__  # same seed, same mesh
shardings = [p.sharding for p in jax.tree.leaves(nnx.state(many, nnx.Param))]
out["params_replicated_on"] = sorted({len(s.device_set) for s in shardings if s.is_fully_replicated})

# The compiled epoch: look for the per-device mini-batch and the gradient all-reduce.
graphdef, params, rest = nnx.split(model(), nnx.Param, ...)
x, y = jax.numpy.asarray(data.train.x), jax.numpy.asarray(data.train.y)
state = ((params, rest, mlkit.train.make_optimizer(config).init(params)), x, y, jax.random.key(0))
for name, m in (("hlo_one", None), ("hlo_mesh", mesh)):
    with jax.set_mesh(m):
        static = (graphdef, data.task, train.optimizer(config.optimizer), config.batch_size, config.shuffle)
        run, _ = compiled(train.train_epoch, static, *parallel.replicate(state, m))
    out[name] = run.as_text()

before = stats["compiles"]
try:
    mlkit.fit(model(), data, config.replace(batch_size=30), mesh=mesh)
except ValueError as e:
    out["error"] = str(e)
out["compiles_for_error"] = stats["compiles"] - before
explicit = jax.make_mesh((4,), ("batch",), axis_types=(jax.sharding.AxisType.Explicit,))
try:
    mlkit.fit(model(), data, config, mesh=explicit)
except ValueError as e:
    out["explicit_error"] = str(e)

out["diverged"] = mlkit.fit(model(), data, config.replace(optimizer="sgd", learning_rate=1e6), mesh=mesh).status

def stop_after_two(history):
    if history.epochs == 2:
        raise KeyboardInterrupt
h = mlkit.fit(model(), data, config.replace(epochs=5), callbacks=[stop_after_two], mesh=mesh)
out["interrupted"] = [h.status, h.epochs]
print(json.dumps(out, default=str))
"""


def run_with_devices(code: str, devices: int, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def four():
    return run_with_devices(FOUR_DEVICES, 4, timeout=120)


@pytest.mark.parametrize("variant", ["plain", "dropout"])
def test_data_parallel_gives_the_single_device_loss_curve(four, variant):
    assert four["devices"] == 4
    one, many = four[variant]
    assert one["status"] == many["status"] == "completed"
    for series in ("train_loss", "val_loss", "train_acc", "val_acc"):
        assert many[series] == pytest.approx(one[series], rel=1e-5, abs=1e-6), series
    assert max(four[variant + "_params"]) < 1e-5
    assert four["params_replicated_on"] == [4]  # every parameter: a whole copy on each of the 4 devices


def test_same_seed_same_mesh_same_numbers(four):
    again, first = four["again"], four["plain"][1]
    assert again["train_loss"] == first["train_loss"] and again["val_loss"] == first["val_loss"]


def test_each_device_gathers_only_its_slice_and_gradients_are_all_reduced(four):
    # 64 examples of 64 features per step: 16 rows per device under the mesh, all 64 on one device.
    assert "f32[16,64]" in four["hlo_mesh"] and "all-reduce" in four["hlo_mesh"]
    assert "f32[16,64]" not in four["hlo_one"] and "all-reduce" not in four["hlo_one"]


def test_batch_that_does_not_divide_is_a_clear_error_before_compiling(four):
    assert "multiple of the 4 devices" in four["error"] and "got 30" in four["error"]
    assert "Try 28 or 32" in four["error"] and four["compiles_for_error"] == 0


def test_a_mesh_with_explicit_axes_is_refused_with_the_fix(four):
    # jax.make_mesh's default axis type is Explicit, where a batch-sharded gradient is a sharding type error.
    assert "AxisType.Auto" in four["explicit_error"] and "data_mesh" in four["explicit_error"]


def test_divergence_and_interrupt_handling_survive_the_mesh(four):
    assert four["diverged"] == "diverged"
    assert four["interrupted"] == ["interrupted", 2]


def test_two_processes_train_one_model_and_agree(four):
    spec = importlib.util.spec_from_file_location("two_hosts", ROOT / "examples" / "two_hosts.py")
    two_hosts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(two_hosts)
    results = two_hosts.launch(timeout_s=90)
    assert [r["process"] for r in results] == [0, 1]
    assert all(r["devices"] == 4 and r["local_devices"] == 2 and r["status"] == "completed" for r in results)
    assert results[0]["sha256"] == results[1]["sha256"]  # bit-identical parameters on both processes
    # Two processes x two devices trains the same curve as one device with the same global batch.
    assert results[0]["train_loss"] == pytest.approx(four["plain"][0]["train_loss"], rel=1e-5)


def test_initialize_says_which_variables_are_missing(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="missing JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID"):
        parallel.initialize()
