"""Worked solutions to lesson 00's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import mlkit
from mlkit.lessons import check

# The lesson's data, model, configuration and predictor, as in its cells.
data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, hidden=(256, 256), num_classes=data.num_classes, seed=0)
config = mlkit.TrainConfig(epochs=30, batch_size=32, learning_rate=1e-3, progress=False)
mlkit.fit(model, data, config)
predictor = mlkit.freeze(model, data)

# 1. An epoch takes one step per full batch; the digits that do not fill a last batch wait for the next epoch.
per_epoch = len(data.train) // 100
print(f"{len(data.train)} digits in batches of 100: {per_epoch} steps per epoch, {len(data.train) % 100} left over")
assert check.steps_in_training(30 * per_epoch, data, config.replace(batch_size=100))

# 2. One fresh model per learning rate, judged on validation.
learned = []
for rate in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0):
    history = mlkit.fit(mlkit.MLP(64, (256, 256), 10, seed=0), data, config.replace(learning_rate=rate))
    final = history.val_acc[-1] if history.status != "diverged" else None
    print(f"learning rate {rate:g}: {history.status}, final validation accuracy {final}")
    if final is not None and final > 0.9:
        learned.append(rate)
assert check.learning_rates_that_learn(learned, data, config)

# 3. One hidden layer of 32 units.
small = mlkit.MLP(64, (32,), 10, seed=0)
history = mlkit.fit(small, data, config)
print(f"{mlkit.count_params(small):,} parameters against {mlkit.count_params(model):,}: {history.val_acc[-1]:.3f}")
assert check.small_model_accuracy(history.val_acc[-1], data, config)

# 4. A predictor takes a batch, even of one: keep the batch axis with a slice.
digit = int(predictor.predict(data.val.raw_x[3:4])[0])
assert check.one_row(digit, predictor, data)
