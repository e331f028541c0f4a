"""Worked solutions to lesson 12's exercises; `pytest tests/test_solutions.py` runs them against the self-checks.

Run alone it simulates four CPU devices, as the lesson does; under pytest the checks use what JAX already has.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax

from mlkit.lessons import check
from mlkit.train import parallel

devices = min(4, jax.device_count())

# 1. The global batch is cut into one equal slice per device.
per_device = parallel.per_device_batch(devices, parallel.data_mesh(jax.devices()[:devices]))
print(f"{devices} devices, batch {devices}: {per_device} example(s) each")
assert check.rows_per_device(per_device, batch_size=devices, devices=devices)

# 2. A batch must divide by the device count (on one device every batch does, and the check knows it).
if devices == 4:
    assert check.refused_batch(next(b for b in (30, 32) if b % 4), devices=4)

# 3. (b): the mean of equal slices' means is the whole mean, and all devices apply the same update.
assert check.same_numbers_why("b")
