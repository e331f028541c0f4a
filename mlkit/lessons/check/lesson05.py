"""The self-checks of lesson 05 (The training loop), in exercise order."""

from __future__ import annotations

from mlkit.data import Dataset
from mlkit.lessons.check.verdict import choice, close_to, judge
from mlkit.lessons.training import playground
from mlkit.models import MLP
from mlkit.train import TrainConfig, sweep


def spirals_capacity(answer: tuple[float, float] | None) -> bool:
    """Exercise 05.1: the playground's validation accuracy on "spirals" with its default 2 layers of 16, then with
    1 layer of 4 units: in the order the exercise takes the steps."""

    def right(a) -> bool:
        play = playground(render=False)
        deep = play.set_value("dataset", "spirals")
        play.set_value("width", 4)
        narrow = play.set_value("depth", 1)
        assert deep is not None and narrow is not None, "set_value waits for its run"
        return close_to(deep.val_acc[-1], 0.01)(a[0]) and close_to(narrow.val_acc[-1], 0.01)(a[1])

    return judge(
        answer,
        right,
        "choose spirals, read 'val acc' in the status line, then set width 4 and 1 hidden layer and read it again; "
        "answer (the first, the second).",
        "Four tanh units can draw only a gently curved boundary, near a coin toss on two arms that wind round "
        "each other; two layers of 16 can follow the arms.",
    )


def why_sgd_needs_more(answer: str | None) -> bool:
    """Exercise 05.2: why SGD's best learning rate is about 100 times Adam's (a, b or c)."""
    return judge(
        answer,
        choice("a"),
        "write out one step of each: SGD moves w by lr * g; Adam by about lr * g / |g|. How big is g here?",
        "A typical gradient of one weight here is about 0.01, so SGD needs lr near 1 for the steps Adam takes at "
        "0.01. Tuned, the two reach the same accuracy, so (b) does not hold, and a larger step amplifies noise, "
        "it does not average it away (c).",
    )


def heavier_momentum_rate(answer: float | None, data: Dataset) -> bool:
    """Exercise 05.3: the best of lesson 05's learning rates for momentum 0.95 (lowest final validation loss)."""

    rates = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0]

    def right(a) -> bool:
        config = TrainConfig(epochs=10, optimizer="momentum", momentum=0.95, progress=False)
        result = sweep(lambda seed: MLP(64, (64,), 10, seed=seed), data, config, learning_rates=rates)
        return close_to(float(result.learning_rates[result.best()]), 1e-9)(a)

    return judge(
        answer,
        right,
        "momentum 0.9 (10 gradients' worth) wanted a tenth of SGD's learning rate; 20 gradients' worth wants about "
        "a twentieth. Check with mlkit.sweep(..., mlkit.TrainConfig(epochs=10, optimizer='momentum', "
        "momentum=0.95), learning_rates=learning_rates) and best().",
        "Near SGD's best divided by 20 (0.05): a heavier velocity takes longer strides, so the learning rate "
        "must shrink to match; at 0.1 it already trains far worse.",
    )
