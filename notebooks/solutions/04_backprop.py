"""Worked solutions to lesson 04's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import numpy as np

import mlkit
from mlkit.lessons import byhand, check

# The lesson's batch, network and hand-written passes, as in its first cells.
data = mlkit.load_dataset("moons", n=200, noise=0.2, seed=0)
x = data.train.x[:64].astype(np.float64)
y = data.train.y[:64]
rng = np.random.default_rng(0)
params = {
    "W1": rng.normal(size=(2, 8)) / np.sqrt(2), "b1": 0.1 * rng.normal(size=8),
    "W2": rng.normal(size=(8, 2)) / np.sqrt(8), "b2": 0.1 * rng.normal(size=2),
}  # fmt: skip


def forward(params, x, y, xp=np):
    z1 = x @ params["W1"] + params["b1"]
    h = xp.tanh(z1)
    z2 = h @ params["W2"] + params["b2"]
    z2 = z2 - z2.max(axis=1, keepdims=True)
    logp = z2 - xp.log(xp.exp(z2).sum(axis=1, keepdims=True))
    return -logp[xp.arange(len(y)), y].mean(), (h, xp.exp(logp))


def backward(params, x, y, h, p):
    n = len(y)
    dz2 = (p - np.eye(2)[y]) / n
    dh = dz2 @ params["W2"].T
    dz1 = dh * (1 - h**2)
    return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}


# 1. Only the slope of the activation changes: relu's is 1 where the unit is on, 0 where it is off.
def backward_relu(params, x, y, h, p):
    n = len(y)
    dz2 = (p - np.eye(2)[y]) / n
    dh = dz2 @ params["W2"].T
    dz1 = dh * (h > 0)  # was: dh * (1 - h**2)
    return {"W1": x.T @ dz1, "b1": dz1.sum(axis=0), "W2": h.T @ dz2, "b2": dz2.sum(axis=0)}


assert check.relu_backward(backward_relu)

# 2. Scan the learning rates below the limit 2/40 and keep the one with the lowest loss after 200 steps.
valley = byhand.Valley(40.0)
rates = np.arange(0.0005, valley.largest_stable_lr, 0.0005)
final = [valley.value(byhand.gradient_descent(valley.grad, (-4.5, 1.5), lr, 200)[-1]) for lr in rates]
best = float(rates[int(np.argmin(final))])
print(f"lowest loss after 200 steps at lr {best:.4f}; 2/40 = {2 / 40}, 2/(1+40) = {2 / 41:.4f}")
assert check.fastest_learning_rate(best)


# 3. Train with each learning rate and name what the loss did.
def shape_of_training(lr, steps=300):
    trained, losses = {k: v.copy() for k, v in params.items()}, []
    for _ in range(steps):
        loss, (h, p) = forward(trained, x, y)
        losses.append(loss)
        for name, grad in backward(trained, x, y, h, p).items():
            trained[name] -= lr * grad
    if losses[-1] > losses[0]:
        return "diverged"
    return "bumpy" if (np.diff(losses) > 0).any() else "smooth"


shapes = {lr: shape_of_training(lr) for lr in (0.5, 5, 20)}
print(shapes)
assert check.network_regimes(shapes, forward, backward, params, x, y)
