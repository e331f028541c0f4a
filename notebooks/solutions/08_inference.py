"""Worked solutions to lesson 08's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import mlkit
from mlkit.infer.postprocess import coverage, fit_temperature
from mlkit.lessons import check

# The lesson's model, as in its first cell.
data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, (128,), data.num_classes, dropout=0.3, batch_norm=True, seed=0)
mlkit.fit(model, data, mlkit.TrainConfig(epochs=15, learning_rate=3e-3, progress=False))
predictor = mlkit.freeze(model, data)

# 1. data.val.x is already standardised; the predictor standardises it again.
answered, right = coverage(predictor.predict_proba(data.val.x), data.val.y, 0.9)
print(f"standardised twice, threshold 0.9: answers {answered:.0%}, right on {right:.0%} of those")
assert check.twice_standardised((answered, right), predictor, data)

# 2. Rows whose largest probability is below 0.5 are "unsure".
unsure = int((predictor.predict_proba(data.test.raw_x).max(1) < 0.5).sum())
print(f"unsure at 0.5: {unsure} of {len(data.test)} test digits")
assert check.unsure_at(unsure, predictor, data)

# 3. Fit the temperature on validation, never on test.
temperature = fit_temperature(predictor.predict_proba(data.val.raw_x), data.val.y)
print(f"temperature for the lesson's model: {temperature:.2f}")
assert check.temperature_side("above" if temperature > 1 else "below", predictor, data)
