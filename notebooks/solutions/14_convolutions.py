"""Worked solutions to lesson 14's exercises; `pytest tests/test_solutions.py` runs them against the self-checks."""

from flax import nnx

import mlkit
from mlkit.infer import accuracy
from mlkit.infer.resize import with_resize
from mlkit.lessons import check
from mlkit.lessons.vision import block_flops

# The lesson's ConvNet and the 8x8 digits, as in its cells.
data = mlkit.load_dataset("mnist5k", seed=0)
digits = mlkit.load_dataset("digits", seed=0)
model = mlkit.ConvNet(data.image_shape, data.num_classes, channels=(8, 16), seed=0)
mlkit.fit(model, data, mlkit.TrainConfig(epochs=8, learning_rate=3e-3, progress=False))
conv_predictor = mlkit.freeze(model, data)

# 1. Each filter: 5 x 5 weights on each of the 3 channels, plus one bias; eight filters.
params = 8 * (5 * 5 * 3 + 1)
print(f"{params} parameters; flax counts {mlkit.count_params(nnx.Conv(3, 8, (5, 5), rngs=nnx.Rngs(0)))}")
assert check.colour_conv_params(params)

# 2. Per pixel a convolution costs 2·9·in·out: 28·28 pixels · 1 · 8 against 14·14 pixels · 8 · 16.
first, second = 2 * 28 * 28 * 9 * 1 * 8, 2 * 14 * 14 * 9 * 8 * 16
assert [first, second] == block_flops((28, 28), (8, 16))
assert check.costlier_block("first" if first > second else "second")

# 3. The same box, no ink scale: strokes of 0-16 where the model learned 0-255.
unscaled = accuracy(with_resize(conv_predictor, (8, 8), to=(28, 28), box=(20, 20)), digits.test)
scaled = accuracy(with_resize(conv_predictor, (8, 8), to=(28, 28), box=(20, 20), scale=255 / 16), digits.test)
print(f"8x8 digits in the box: {unscaled:.1%} without the scale, {scaled:.1%} with it")
assert unscaled < scaled and check.unscaled_accuracy(unscaled, conv_predictor, digits)
