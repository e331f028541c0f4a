"""Worked solutions to lesson 11's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import numpy as np
from flax import nnx

import mlkit
from mlkit.data import shifts
from mlkit.infer import accuracy
from mlkit.lessons import check

data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, (128,), data.num_classes, seed=0)
mlkit.fit(model, data, mlkit.TrainConfig(epochs=15, progress=False))

# 1. (a): look at the standardised inverted digits: the border pixels, nearly always 0 in training,
#    have a tiny scale, so a background of 16 becomes inputs far outside anything the weights saw.
inverted = shifts.shift(data.val, "invert", 1.0, image_shape=data.image_shape, preprocessor=data.preprocessor)
print(f"largest standardised input: original {np.abs(data.val.x).max():.0f}, inverted {np.abs(inverted.x).max():.0f}")
assert check.inverted_digits("a")

# 2. Fine-tune on 20, 40, ... rotated digits until 80% of the drop is recovered.
frozen = mlkit.freeze(model, data)
base = accuracy(frozen, data.val)
needed = None
for n in range(20, 401, 20):
    small = shifts.finetune_data(data, "rotate", 0.6, n, seed=0)
    hit = accuracy(frozen, small.val)
    tuned = nnx.clone(model)
    mlkit.fit(tuned, small, mlkit.TrainConfig(epochs=20, batch_size=16, progress=False))
    recovered = (mlkit.evaluate(tuned, small.val)[1] - hit) / (base - hit)
    print(f"{n} labelled: recovers {recovered:.0%}")
    if recovered >= 0.8:
        needed = n
        break
assert check.labels_for_recovery(needed, model, data)

# 3. Replay: 100 new digits plus 100 old ones, the original statistics kept; fine-tune at 1e-2 with and without.
small = shifts.finetune_data(data, "thicken", 0.6, 100, seed=0)
old = np.random.default_rng(0).permutation(len(data.train))[:100]
mixed = mlkit.data.with_train(
    small,
    np.concatenate([small.train.raw_x, data.train.raw_x[old]]),
    np.concatenate([small.train.y, data.train.y[old]]),
)
mixed = mlkit.data.with_preprocessor(mixed, data.preprocessor)
kept = {}
for name, sample in (("plain", small), ("replay", mixed)):
    tuned = nnx.clone(model)
    mlkit.fit(tuned, sample, mlkit.TrainConfig(epochs=20, batch_size=16, learning_rate=1e-2, progress=False))
    kept[name] = mlkit.evaluate(tuned, data.val)[1]
print(f"original digits after fine-tuning: {kept['plain']:.1%} plain, {kept['replay']:.1%} with replay")
assert check.replay_forgets_less(kept["replay"] > kept["plain"], model, data)
