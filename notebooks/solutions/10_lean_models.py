"""Worked solutions to lesson 10's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import numpy as np

import mlkit
from mlkit.infer import accuracy
from mlkit.infer.compress import lean
from mlkit.lessons import check

data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, (256, 256), data.num_classes, batch_norm=True, seed=0)
mlkit.fit(model, data, mlkit.TrainConfig(epochs=20, progress=False))

# 1. The same network without batch norm: where does pruning first cost more than 5 points?
plain = mlkit.MLP(data.num_features, (256, 256), data.num_classes, seed=0)
mlkit.fit(plain, data, mlkit.TrainConfig(epochs=20, progress=False))
base = accuracy(mlkit.freeze(plain, data), data.val)
scores = {s: accuracy(lean(plain, data, "float32", s), data.val) for s in (0.5, 0.7, 0.8, 0.95)}
print({s: f"{a:.1%}" for s, a in scores.items()}, f"unpruned {base:.1%}")
cliff = next((s for s, a in scores.items() if a < base - 0.05), None)
assert check.pruning_cliff(cliff, data)

# 2. Raise the sparsity of the int8 model in steps of 0.05 while it stays within a point.
base = accuracy(mlkit.freeze(model, data), data.val)
grid = np.round(np.arange(0.0, 0.951, 0.05), 2)
within = [float(s) for s in grid if accuracy(lean(model, data, "int8", float(s)), data.val) >= base - 0.01]
print(f"int8 stays within a point up to {max(within):.0%} zeros")
assert check.smallest_int8(max(within), model, data)

# 3. (b): the CPU computes in float32 (bfloat16 is converted back first), and a batch-1 call is mostly overhead.
assert check.fewer_bytes_faster("b")
