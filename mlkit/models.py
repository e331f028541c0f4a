"""Small flax.nnx models that read like the maths they compute.

Every model maps a batch of flat feature vectors ``(batch, features)`` to
``(batch, outputs)`` logits (or regression values), so data, training and
inference code never care which model they hold.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "linear": lambda z: z,
}


def _check(dropout: float, activation: str = "relu") -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}: it is the fraction of units zeroed.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}.")


class LogisticRegression(nnx.Module):
    """One linear layer: ``logits = x @ W + b``. Softmax lives in the loss."""

    def __init__(self, num_features: int, num_classes: int, *, seed: int = 0):
        self.linear = nnx.Linear(num_features, num_classes, rngs=nnx.Rngs(seed))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x)


class MLP(nnx.Module):
    """A multi-layer perceptron: (Linear → [BatchNorm] → activation → [Dropout]) per hidden layer, then Linear."""

    def __init__(
        self,
        num_features: int,
        hidden: Sequence[int] = (256, 256),
        num_classes: int = 10,
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        seed: int = 0,
    ):
        _check(dropout, activation)
        hidden = tuple(hidden)
        if not all(isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1 for w in hidden):
            raise ValueError(f"Hidden layer widths must be positive integers, got {hidden}; e.g. hidden=(256, 256).")
        rngs = nnx.Rngs(seed)
        sizes = [num_features, *hidden]
        self.activation = activation
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])
        self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, rngs=rngs) for b in hidden] if batch_norm else [])
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.head = nnx.Linear(sizes[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.norms:
                x = self.norms[i](x)
            x = act(x)
            if self.dropout is not None:
                x = self.dropout(x)
        return self.head(x)


class ConvNet(nnx.Module):
    """A small convolutional network for square grey images given as flat pixel rows.

    Two (3x3 conv → ReLU → 2x2 average pool) blocks, then a linear classifier.
    """

    def __init__(
        self,
        image_shape: tuple[int, int] = (8, 8),
        num_classes: int = 10,
        *,
        channels: Sequence[int] = (16, 32),
        dropout: float = 0.0,
        seed: int = 0,
    ):
        _check(dropout)
        rngs = nnx.Rngs(seed)
        self.image_shape = tuple(image_shape)
        sizes = [1, *channels]
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in itertools.pairwise(sizes)])
        height, width = self.image_shape
        for _ in channels:
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"{len(channels)} pooling blocks shrink a {image_shape} image to nothing; use fewer channels."
            )
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.head = nnx.Linear(height * width * sizes[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], *self.image_shape, 1)
        for conv in self.convs:
            x = nnx.avg_pool(jax.nn.relu(conv(x)), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.head(x)


def eval_view(model: nnx.Module) -> nnx.Module:
    """The same model in inference mode: dropout off, batch norm on its running statistics.

    A view, not a copy and not a flag threaded through the code: training and
    inference call the same ``__call__``.
    """
    return nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)


def split_params(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """The model as (static graph, trainable parameters, everything else: batch statistics, RNG state)."""
    graphdef, params, *rest = nnx.split(model, nnx.Param, ...)
    return graphdef, params, rest[0]


def count_params(model: nnx.Module) -> int:
    """Number of trainable numbers in the model (batch-norm statistics excluded)."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


class EmbeddingBag(nnx.Module):
    """A text classifier: each token id looks up a learned vector; a text is the mean of its words' vectors
    (padding, id 0, left out), then one linear layer.

    Rows hold token ids as float32 numbers, like every model's input (see :mod:`mlkit.data.text`); an id
    outside the vocabulary is clipped into it. The mean forgets word order: "not good, bad" and
    "not bad, good" are the same bag.
    """

    def __init__(self, vocab_size: int, num_classes: int, *, dim: int = 32, seed: int = 0):
        if vocab_size < 2 or dim < 1:
            raise ValueError(f"Need vocab_size >= 2 (padding and unknown) and dim >= 1; got {vocab_size} and {dim}.")
        rngs = nnx.Rngs(seed)
        self.vocab_size = vocab_size
        self.embed = nnx.Embed(vocab_size, dim, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        ids = jnp.clip(x.astype(jnp.int32), 0, self.vocab_size - 1)
        present = (ids != 0).astype(jnp.float32)[..., None]  # (batch, length, 1): 1 for a word, 0 for padding
        bag = (self.embed(ids) * present).sum(1) / jnp.maximum(present.sum(1), 1.0)
        return self.head(bag)
