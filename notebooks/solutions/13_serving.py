"""Worked solutions to lesson 13's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import tempfile
from pathlib import Path

import httpx
import numpy as np

import mlkit
from mlkit.lessons import check
from mlkit.serve import Server

data = mlkit.load_dataset("digits", seed=0)
model = mlkit.MLP(data.num_features, (16,), data.num_classes, seed=0)
path = mlkit.save_predictor(mlkit.freeze(model, data), Path(tempfile.mkdtemp(prefix="mlkit-13-solution-")) / "digits")

# 1. Send a row of 63 numbers and read the status (and the message that says what was expected).
with Server(path) as server:
    reply = httpx.post(f"{server.url}/predict", json={"inputs": np.zeros((1, 63)).tolist()})
print(reply.status_code, reply.json())
assert check.status_for(reply.status_code, "wrong width")

# 2. (c): past capacity a queue only grows; a quick 503 keeps the accepted requests' latency bounded.
assert check.why_retry_after("c")
