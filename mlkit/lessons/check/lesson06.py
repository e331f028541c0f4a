"""The self-checks of lesson 06 (Validation and overfitting), in exercise order."""

from __future__ import annotations

from mlkit.data import Dataset, with_train_size
from mlkit.lessons.check.verdict import close_to, judge
from mlkit.lessons.training import augmented_digits, capacity_lab, overfitting_lab
from mlkit.models import MLP
from mlkit.train import TrainConfig, sweep


def best_weight_decay(answer: float | None, data: Dataset, decays=(0.1, 1.0, 3.0, 10.0)) -> bool:
    """Exercise 06.1: which of ``decays`` ends the overfitting lab (at its defaults) with the lowest validation loss."""

    def right(a) -> bool:
        lab = overfitting_lab(data, render=False)
        final = {}
        for wd in decays:
            history = lab.set_value("weight_decay", wd)
            assert history is not None, "set_value waits for its run"
            final[wd] = history.val_loss[-1]
        return close_to(min(final, key=lambda wd: final[wd]), 1e-9)(a)

    return judge(
        answer,
        right,
        "set the lab's weight decay slider to each value in turn and read 'val loss' in the status line.",
        "A moderate pull towards zero keeps the network from growing over-confident; at 10 the training loss stays "
        "well above zero and the validation loss rises again: too much restraint starts to underfit.",
    )


def stopped_by_hand(answer: float | None) -> bool:
    """Exercise 06.2: the capacity lab's final validation loss with epochs cut to its best epoch, rounded up to 100."""

    def right(a) -> bool:
        lab = capacity_lab(render=False)
        full = lab.train()
        assert full is not None and full.best_epoch is not None, "train waits for its run"
        short = lab.set_value("epochs", -(-full.best_epoch // 100) * 100)
        assert short is not None, "set_value waits for its run"
        return close_to(short.val_loss[-1], 0.005)(a)

    return judge(
        answer,
        right,
        "the dotted line in the loss panel (or lab.history.best_epoch) gives the epoch; set the epochs slider to "
        "the next multiple of 100 and read 'val loss' in the status line.",
        "About a third of the 3000-epoch loss, with the same network: stopping early takes away the time it "
        "needed to learn the noise.",
    )


def augmentation_at_300(answer: float | None, data: Dataset) -> bool:
    """Exercise 06.3: mean validation accuracy (3 seeds) with augmentation minus without, on 300 training digits."""

    def right(a) -> bool:
        small = with_train_size(data, 300, seed=0)
        config = TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3, progress=False)
        model = lambda seed: MLP(64, (256, 256), 10, seed=seed)
        plain = sweep(model, small, config, seeds=range(3)).val_acc[:, -1].mean()
        more = sweep(model, augmented_digits(small), config.replace(epochs=3), seeds=range(3)).val_acc[:, -1].mean()
        return close_to(float(more - plain), 0.005)(a)

    return judge(
        answer,
        right,
        "build small = with_train_size(digits, 300, seed=0), train big() on it with config.replace(epochs=50) and on "
        "training.augmented_digits(small) with config.replace(epochs=3) using mlkit.sweep(..., seeds=seeds); "
        "subtract the mean final val_acc.",
        "The three points it bought on 100 digits are gone: with three times the real digits, the shifted and "
        "turned copies add little that the model has not already seen.",
    )
