"""Worked solutions to lesson 07's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import numpy as np

import mlkit
from mlkit.lessons import check

data = mlkit.load_dataset("digits", seed=0)
config = mlkit.TrainConfig(epochs=10, progress=False)
learning_rates = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
widths = [16, 64, 256]


def pick(acc, loss):
    """The lesson's rule: the highest validation accuracy; among ties, the lowest validation loss."""
    return int(np.lexsort((loss, -acc))[0])


def grid(rates):
    """Final validation accuracy and loss, one row per width, one column per learning rate."""
    runs = [
        mlkit.sweep(lambda seed, w=w: mlkit.MLP(64, (w, w), 10, seed=seed), data, config, learning_rates=rates)
        for w in widths
    ]
    return np.array([r.val_acc[:, -1] for r in runs]), np.array([r.val_loss[:, -1] for r in runs])


# 1. The grid twice, and each width's chosen learning rate in both.
val_acc, val_loss = grid(learning_rates)
wider = [3e-5, *learning_rates, 0.3]
wide_acc, wide_loss = grid(wider)
moved = []
for width, acc, loss, acc2, loss2 in zip(widths, val_acc, val_loss, wide_acc, wide_loss, strict=True):
    before, after = learning_rates[pick(acc, loss)], wider[pick(acc2, loss2)]
    print(f"width {width}: {before:g} -> {after:g}")
    if before != after:
        moved.append(width)
assert check.wider_grid_moves(moved, data)

# 2. Twenty random trials against the grid's best, measured against the spread of five seeds of the best cell.
row, column = np.unravel_index(pick(val_acc.ravel(), val_loss.ravel()), val_acc.shape)
w, lr = widths[row], learning_rates[column]
spread = mlkit.sweep(
    lambda seed: mlkit.MLP(64, (w, w), 10, seed=seed), data, config.replace(learning_rate=lr), seeds=range(5)
).val_acc[:, -1]
rng = np.random.default_rng(0)
trials = [(float(10 ** rng.uniform(-4, -1)), int(rng.choice(widths))) for _ in range(20)]
best_random = max(
    mlkit.fit(mlkit.MLP(64, (w, w), 10, seed=0), data, config.replace(learning_rate=lr)).val_acc[-1] for lr, w in trials
)
margin, noise = best_random - val_acc.max(), spread.max() - spread.min()
print(f"random search beats the grid by {margin:+.3f}; five seeds of one setting span {noise:.3f}")
assert check.random_search_wins(bool(margin > noise), data, val_acc, spread)

# 3. The lab's model at width 512 (2 layers, batch 32, 20 epochs), every learning rate at once.
rates = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
lab_runs = mlkit.sweep(
    lambda seed: mlkit.MLP(64, (512, 512), 10, seed=seed), data, mlkit.TrainConfig(progress=False), learning_rates=rates
)
final = zip(rates, lab_runs.status, lab_runs.val_acc[:, -1], strict=True)
trains = [r for r, s, a in final if s == "completed" and a > 0.9]
print(f"width 512 trains up to learning rate {max(trains):g}")
assert check.widest_largest_rate(max(trains), data)
