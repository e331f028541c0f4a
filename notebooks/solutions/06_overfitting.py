"""Worked solutions to lesson 06's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import mlkit
from mlkit.lessons import check, training

digits = mlkit.load_dataset("digits", seed=0)

# 1. Drive a copy of the overfitting lab through the four weight decays.
lab = training.overfitting_lab(digits, render=False)
final = {}
for decay in (0.1, 1.0, 3.0, 10.0):
    history = lab.set_value("weight_decay", decay)
    final[decay] = history.val_loss[-1]
    print(f"weight decay {decay:4}: val loss {history.val_loss[-1]:.3f}, train loss {history.train_loss[-1]:.3f}")
assert check.best_weight_decay(min(final, key=final.get), digits)

# 2. Read the best epoch of the capacity lab's default run, round it up to a hundred, retrain that long.
capacity = training.capacity_lab(render=False)
best = capacity.train().best_epoch
short = capacity.set_value("epochs", -(-best // 100) * 100)
print(f"best epoch {best}; {short.epochs} epochs end at val loss {short.val_loss[-1]:.3f}")
assert check.stopped_by_hand(short.val_loss[-1])

# 3. The lesson's comparison, on 300 digits: 50 epochs (about 900 steps) against 3 epochs of 17x the data.
small = mlkit.data.with_train_size(digits, 300, seed=0)
config = mlkit.TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3, progress=False)


def big(seed):
    return mlkit.MLP(64, (256, 256), 10, seed=seed)


plain = mlkit.sweep(big, small, config, seeds=range(3)).val_acc[:, -1]
more = mlkit.sweep(big, training.augmented_digits(small), config.replace(epochs=3), seeds=range(3)).val_acc[:, -1]
print(f"300 digits: {plain.mean():.3f} without augmentation, {more.mean():.3f} with it")
assert check.augmentation_at_300(float(more.mean() - plain.mean()), digits)
