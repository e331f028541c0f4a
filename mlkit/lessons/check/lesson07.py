"""The self-checks of lesson 07 (Hyperparameter tuning), in exercise order."""

from __future__ import annotations

import numpy as np

from mlkit.data import Dataset
from mlkit.lessons.check.verdict import boolean, close_to, judge
from mlkit.models import MLP
from mlkit.train import TrainConfig, fit, sweep


def _tuning_grid(data: Dataset, rates: list[float], widths=(16, 64, 256)) -> tuple[np.ndarray, np.ndarray]:
    """Lesson 07's grid: the final validation (accuracy, loss) of MLP(64, (w, w), 10) after 10 epochs, (width, rate)."""

    acc, loss = [], []
    for width in widths:

        def model(seed: int, w: int = width) -> MLP:
            return MLP(64, (w, w), 10, seed=seed)

        run = sweep(model, data, TrainConfig(epochs=10, progress=False), learning_rates=rates)
        acc.append(run.val_acc[:, -1])
        loss.append(run.val_loss[:, -1])
    return np.array(acc), np.array(loss)


def _pick(acc: np.ndarray, loss: np.ndarray) -> int:
    """Lesson 07's rule: the highest validation accuracy; among ties, the lowest validation loss."""
    return int(np.lexsort((loss, -acc))[0])


def wider_grid_moves(answer: list[int] | None, data: Dataset) -> bool:
    """Exercise 07.1: the widths whose chosen learning rate changes when 3e-5 and 0.3 join the grid."""
    rates = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    wider = [3e-5, *rates, 0.3]

    def right(a) -> bool:
        (acc, loss), (acc2, loss2) = _tuning_grid(data, rates), _tuning_grid(data, wider)
        before = [rates[_pick(*row)] for row in zip(acc, loss, strict=True)]
        after = [wider[_pick(*row)] for row in zip(acc2, loss2, strict=True)]
        moved = [w for w, b, c in zip((16, 64, 256), before, after, strict=True) if b != c]
        return sorted(int(w) for w in a) == moved

    return judge(
        answer,
        right,
        "run the grid cell with learning_rates = [3e-5, *learning_rates, 0.3] and compare the printed best learning "
        "rate of each width with the first run's.",
        "A best value with worse values on both sides stays put when the grid grows: widen a grid when its best "
        "sits on an edge.",
    )


def random_search_wins(answer: bool | None, data: Dataset, val_acc: np.ndarray, spread: np.ndarray) -> bool:
    """Exercise 07.2: does the best of 20 random trials beat the grid's best by more than the seed spread?"""

    def right(a) -> bool:
        rng = np.random.default_rng(0)
        trials = [(float(10 ** rng.uniform(-4, -1)), int(rng.choice([16, 64, 256]))) for _ in range(20)]
        best = max(
            fit(MLP(64, (w, w), 10, seed=0), data, TrainConfig(epochs=10, learning_rate=lr, progress=False)).val_acc[-1]
            for lr, w in trials
        )
        return boolean(bool(best - float(np.max(val_acc)) > float(np.ptp(spread))))(a)

    return judge(
        answer,
        right,
        "run the random-search cell with range(20), then compare best_random[2] - val_acc.max() with "
        "spread.max() - spread.min().",
        "Compare a margin with the seed spread before calling it a win: a margin inside the spread of five seeds "
        "of one setting is noise, not a better setting.",
    )


def widest_largest_rate(answer: float | None, data: Dataset) -> bool:
    """Exercise 07.3: the largest learning rate at which the lab's MLP (2 layers of 512) ends above 90% validation."""

    rates = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]

    def right(a) -> bool:
        result = sweep(lambda seed: MLP(64, (512, 512), 10, seed=seed), data, TrainConfig(progress=False),
                       learning_rates=rates)  # fmt: skip
        trains = (result.status == "completed") & (result.val_acc[:, -1] > 0.9)
        return close_to(max(lr for lr, ok in zip(rates, trains, strict=True) if ok), 1e-9)(a)

    return judge(
        answer,
        right,
        "set the width slider to 512 and move the learning rate up one value at a time; read 'val acc' in the "
        "status line.",
        "One step above it the wide network ends far below 90%, as the heat map's wider rows led you to expect; "
        "the lab's default, 1e-3, sits safely inside the good band.",
    )
