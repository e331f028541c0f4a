"""Worked solutions to lesson 03's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import jax
import jax.numpy as jnp
import numpy as np

import mlkit
from mlkit.lessons import check
from mlkit.train import per_example_loss

# 1. Equal logits: every class gets 1/3.
equal = jnp.zeros(3)


def ce(z, true=0):
    return per_example_loss(z[None, :], jnp.array([true]), "classification")[0][0]


loss, grad = float(ce(equal)), jax.grad(ce)(equal)
print(f"loss {loss:.4f} (log 3 = {np.log(3):.4f}), gradient {np.asarray(grad)}")
assert check.equal_logits((loss, float(grad[0])))


# 2. Shifting stops exp from overflowing, but the true class's probability still underflows to 0.
def shifted_naive_cross_entropy(z, true):
    z = z - z.max()
    p = jnp.exp(z) / jnp.exp(z).sum()
    return -jnp.log(p[true])


wrong = jnp.array([0.0, 200.0, 0.0])
print("shifted naive loss, confident and wrong:", shifted_naive_cross_entropy(wrong, 0))
assert check.shifted_naive_finite(bool(jnp.isfinite(shifted_naive_cross_entropy(wrong, 0))))

# 3. Under absolute error the best constant is the median.
curve = mlkit.load_dataset("regression_curve", seed=0)
y = jnp.asarray(curve.train.y)
cs = np.linspace(-1.5, 1.5, 121)
best = cs[np.argmin([float(jnp.abs(c - y).mean()) for c in cs])]
print(f"best constant {best:.3f}; mean {float(y.mean()):.3f}, median {float(jnp.median(y)):.3f}")
assert check.best_constant_abs(best, curve.train.y)
