"""Worked solutions to lesson 05's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import mlkit
from mlkit.lessons import check, training

data = mlkit.load_dataset("digits", seed=0)

# 1. Drive a copy of the playground: spirals with the default network, then with one layer of 4 units.
play = training.playground(render=False)
play.set_value("dataset", "spirals")
deep = play.history.val_acc[-1]
play.set_value("width", 4)
play.set_value("depth", 1)
narrow = play.history.val_acc[-1]
print(f"spirals: 2 layers of 16 -> {deep:.1%}, 1 layer of 4 -> {narrow:.1%} validation accuracy")
assert check.spirals_capacity((deep, narrow))

# 2. SGD steps lr * g and g is about 0.01 per weight here; Adam steps about lr whatever g's size.
assert check.why_sgd_needs_more("a")

# 3. Predict SGD's best (1.0) / 20 = 0.05, then sweep: the best of the grid is the one with the lowest val loss.
learning_rates = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0]
heavy = mlkit.sweep(
    lambda seed: mlkit.MLP(64, (64,), 10, seed=seed),
    data,
    mlkit.TrainConfig(epochs=10, optimizer="momentum", momentum=0.95, progress=False),
    learning_rates=learning_rates,
)
best = float(heavy.learning_rates[heavy.best()])
print(f"momentum 0.95: best learning rate {best:g}")
assert check.heavier_momentum_rate(best, data)
