"""Worked solutions to lesson 02's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

import itertools

import jax
import numpy as np
from flax import nnx

import mlkit
from mlkit.lessons import check

data = mlkit.load_dataset("digits", seed=0)

# 1. The FLOPs cell with a gelu model: gelu takes several operations per value where relu takes one.
batch, sizes = 32, [64, 16, 16, 10]
model = mlkit.MLP(64, (16, 16), 10, activation="gelu", seed=0)
graphdef, state = nnx.split(model)
forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
xla_flops = forward.lower(state, data.test.x[:batch]).compile().cost_analysis()["flops"]
our_flops = batch * sum(2 * n_in * n_out for n_in, n_out in itertools.pairwise(sizes))
print(f"gelu: XLA {xla_flops:,.0f} FLOPs, formula {our_flops:,}, ratio {xla_flops / our_flops:.3f}")
assert check.gelu_flops_ratio(xla_flops / our_flops)

# 2. in × out weights + out biases per layer.
layers = [784, 256, 256, 10]
by_hand = sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(layers))
print(
    f"784 -> 256 -> 256 -> 10: {by_hand:,} parameters (mlkit.count_params: "
    f"{mlkit.count_params(mlkit.MLP(784, (256, 256), 10)):,})"
)
assert check.mnist_params(by_hand)

# 3. Training changes the values of the weights, never their number or the work they take.
trained, untrained = mlkit.MLP(64, (16, 16), 10, seed=0), mlkit.MLP(64, (16, 16), 10, seed=0)
mlkit.fit(trained, data, mlkit.TrainConfig(epochs=5, progress=False))
assert mlkit.count_params(trained) == mlkit.count_params(untrained)
assert not np.allclose(trained(data.val.x[:1]), untrained(data.val.x[:1]))
assert check.what_training_changes("b")
