"""Worked solutions to lesson 01's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import dataclasses

import numpy as np

import mlkit
from mlkit.lessons import check

# The lesson's data and the experiment's model and training settings.
data = mlkit.load_dataset("digits", seed=0, val_fraction=0.15, test_fraction=0.2)
config = mlkit.TrainConfig(epochs=15, progress=False)


def final_val_acc(data, config):
    return mlkit.fit(mlkit.MLP(64, (64,), 10, seed=0), data, config).val_acc[-1]


# 1. Sorted storage, shuffled batches: every epoch deals a fresh random order, so the stored one is gone.
order = np.argsort(data.train.y, kind="stable")
sorted_data = dataclasses.replace(data, train=mlkit.Split(*(a[order] for a in dataclasses.astuple(data.train))))
as_stored, as_sorted = final_val_acc(data, config), final_val_acc(sorted_data, config)
print(f"shuffled batches, stored order {as_stored:.3f}, sorted order {as_sorted:.3f}")
assert check.stored_order_matters(abs(as_stored - as_sorted) > 0.01, data)

# 2. Same learning rate, very different numbers of steps per epoch.
acc = {size: final_val_acc(data, config.replace(batch_size=size)) for size in (8, 256)}
for size, a in acc.items():
    print(f"batch {size}: {len(data.train) // size} steps per epoch, validation accuracy {a:.3f}")
assert check.better_batch_size(max(acc, key=acc.__getitem__), data)

# 3. MNIST at a glance.
images, labels = mlkit.data.read_shipped("mnist5k")
shares = np.bincount(labels) / len(labels)
print(f"{images.shape[1]}x{images.shape[2]} pixels from {images.min()} to {images.max()}; shares {shares.round(3)}")
assert check.mnist_at_a_glance((shares.min(), images.max()))
