"""Worked solutions to lesson 09's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import mlkit
from mlkit.lessons import check

data = mlkit.load_dataset("digits", seed=0)
predictor = mlkit.freeze(mlkit.MLP(data.num_features, (256, 256), data.num_classes, seed=0), data)

# 1. A batch is padded up to the next bucket: 17 rows -> the 64-row program.
rows = next(b for b in predictor.buckets if b >= 17)
print(f"buckets {predictor.buckets}: 17 rows run as {rows}")
assert check.rows_computed(rows, predictor, 17)

# 2. Multiply-adds per example, layer by layer (biases and softmax are a rounding error).
wide = 64 * 1024 + 1024 * 1024 + 1024 * 10
narrow = 64 * 256 + 256 * 256 + 256 * 10
print(f"{wide:,} / {narrow:,} multiply-adds = {wide / narrow:.1f}x")
assert check.wider_flops_ratio(wide / narrow, data)

# 3. Capacity of batch B is B / (time per call); the stream needs one request per 4 µs = 0.25 per µs.
calls = {1: 20.0, 16: 30.0, 64: 60.0}
capacity = {b: b / us for b, us in calls.items()}
print({b: f"{c:.2f} req/µs" for b, c in capacity.items()}, "needed 0.25")
assert check.keeps_up(min(b for b, c in capacity.items() if c > 1 / 4.0), calls, gap_us=4.0)
