"""Worked solutions to lesson 15's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import numpy as np

import mlkit
from mlkit.data.text import words
from mlkit.infer.postprocess import coverage
from mlkit.infer.text import freeze_text, route
from mlkit.lessons import check

# The lesson's embedding bag, threshold, routes and inbox, as in its cells.
data = mlkit.load_dataset("reviews", seed=0)
tokenizer = data.tokenizer
model = mlkit.EmbeddingBag(tokenizer.size, data.num_classes, dim=16, seed=0)
mlkit.fit(model, data, mlkit.TrainConfig(epochs=10, learning_rate=3e-3, progress=False))
predictor = freeze_text(model, data)
actions = {"negative": "apologise and offer a refund", "positive": "thank the customer", "unsure": "pass to a person"}
val_probs = predictor.predict_proba(data.val.raw_x)
threshold = next(t for t in np.round(np.arange(0.5, 1.0, 0.01), 2) if coverage(val_probs, data.val.y, t)[1] >= 0.9)
inbox = [
    "It stopped working after two days, very disappointed.",
    "Terrible, worst purchase ever.",
    "Love it, works perfectly!",
    "I am dissatisfied with the quality.",
    "Does it come with a charger?",
]

# 1. Lower-case, split into words, look each up; 1 for a word the vocabulary does not hold.
ids = [tokenizer.vocab.index(w) if w in tokenizer.vocab else 1 for w in words("great food, awful service")]
print("ids:", ids)
assert check.ids_of(ids, tokenizer)

# 2. A plain question whose words lean negative in the reviews ("work", "old"): no complaint, still a refund.
message = "Does it work with my old charger?"
print(message, "->", route(predictor.predict_proba([message]), data.labels, actions, threshold)[0])
assert check.earns_refund(message, predictor, actions, threshold)

# 3. Route the inbox at 0.95 and count what goes to a person.
people = route(predictor.predict_proba(inbox), data.labels, actions, 0.95).count(actions["unsure"])
print(f"at 0.95, {people} of {len(inbox)} messages go to a person")
assert check.people_at(people, predictor, inbox, actions, 0.95)
