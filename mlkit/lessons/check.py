"""Self-checks for the lessons' exercises: pass your answer, get "Right" or a hint, never the solution.

Each check works the true answer out itself, from the data and models the
notebook already holds (or by training its own, with fixed seeds), so it is as
honest as the lesson's asserts. With no answer yet (``None``) a check prints
the hint and returns ``False`` without raising, so a notebook still runs top to
bottom. Worked solutions live in ``solutions/`` beside the notebooks; the test
suite runs every one of them against these checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mlkit import bench
from mlkit.data import Dataset, Tokenizer, read_shipped, with_preprocessor, with_train, with_train_size
from mlkit.data.text import words
from mlkit.infer import Predictor, accuracy, freeze
from mlkit.infer.compress import lean
from mlkit.infer.drift import finetune_data
from mlkit.infer.postprocess import UNSURE, coverage, fit_temperature
from mlkit.infer.predictor import TextPredictor
from mlkit.infer.resize import with_resize
from mlkit.infer.text import route
from mlkit.lessons import byhand
from mlkit.lessons.byhand import Valley, gradient_descent
from mlkit.lessons.training import augmented_digits, capacity_lab, overfitting_lab, playground
from mlkit.lessons.vision import block_flops
from mlkit.models import MLP, count_params
from mlkit.train import TrainConfig, evaluate, fit, parallel, sweep


def judge(answer: Any, right: Callable[[Any], bool], hint: str, why: str = "") -> bool:
    """Print whether ``answer`` passes ``right``, with ``hint`` when it does not (or is missing)."""
    if answer is None:
        print(f"Not answered yet. Hint: {hint}")
        return False
    try:
        ok = bool(right(answer))
    except (TypeError, ValueError):
        ok = False
    print(f"Right. {why}".strip() if ok else f"Not quite ({answer!r}). Hint: {hint}")
    return ok


def close_to(expected: float, tolerance: float) -> Callable[[Any], bool]:
    return lambda answer: abs(float(answer) - expected) <= tolerance


def choice(expected: str) -> Callable[[Any], bool]:
    return lambda answer: str(answer).strip().lower() == expected


# ---------------------------------------------------------------- 00-03 (tour, data, forward pass, loss)


def _boolean(expected: bool) -> Callable[[Any], bool]:
    """A True/False answer (Python, NumPy or JAX boolean) equal to ``expected``; 1 or "yes" do not count."""
    return lambda answer: (
        (isinstance(answer, bool) or getattr(answer, "dtype", None) == np.bool_) and (bool(answer) is expected)
    )


def steps_in_training(answer: int | None, data: Dataset, config: TrainConfig) -> bool:
    """Exercise 00.1: how many gradient steps ``fit(model, data, config)`` takes in all."""
    per_epoch = len(data.train) // config.batch_size
    return judge(
        answer,
        lambda a: int(a) == config.epochs * per_epoch,
        "an epoch is one pass over the training split, one step per full mini-batch (the last partial batch "
        "is dropped): epochs * (len(data.train) // batch_size).",
        f"{per_epoch} steps per epoch; {len(data.train) % config.batch_size} digits sit out each epoch, a different "
        "few each time, since every epoch reshuffles.",
    )


def learning_rates_that_learn(
    answer: list[float] | None, data: Dataset, config: TrainConfig, rates=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
) -> bool:
    """Exercise 00.2: which of ``rates`` take the lesson's MLP past 90% validation accuracy with ``config``."""
    hint = (
        "for each rate train a fresh mlkit.MLP(64, (256, 256), 10, seed=0) with config.replace(learning_rate=rate); "
        "keep the rates whose run did not diverge and whose history.val_acc[-1] is above 0.9."
    )
    if answer is None:  # the truth costs six runs: only work it out for an answer
        return judge(None, bool, hint)
    final = {}
    for rate in rates:
        model = MLP(data.num_features, (256, 256), data.num_classes, seed=0)
        history = fit(model, data, config.replace(learning_rate=rate))
        final[rate] = None if history.status == "diverged" else history.val_acc[-1]
    good = sorted(rate for rate, acc in final.items() if acc is not None and acc > 0.9)
    return judge(
        answer,
        lambda a: len(a) == len(good) and np.allclose(sorted(float(r) for r in a), good),
        hint,
        "Final validation accuracy by learning rate: "
        + ", ".join(f"{rate:g} {'diverged' if acc is None else f'{acc:.0%}'}" for rate, acc in final.items())
        + ". Too large a step need not blow up: it can also leave the model stuck far from a good one.",
    )


def small_model_accuracy(answer: float | None, data: Dataset, config: TrainConfig) -> bool:
    """Exercise 00.3: the final validation accuracy of ``MLP(64, (32,), 10, seed=0)`` trained with ``config``."""

    hint = "train mlkit.MLP(64, (32,), 10, seed=0) with the lesson's config and read history.val_acc[-1]."
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    small, big = (MLP(data.num_features, hidden, data.num_classes, seed=0) for hidden in ((32,), (256, 256)))
    acc, big_acc = (fit(model, data, config).val_acc[-1] for model in (small, big))
    return judge(
        answer,
        close_to(acc, 0.005),
        hint,
        f"{count_params(small):,} parameters instead of {count_params(big):,} "
        f"({count_params(big) / count_params(small):.0f}x fewer) cost {(big_acc - acc) * 100:.1f} points of "
        "validation accuracy: 8x8 digits need little capacity.",
    )


def one_row(answer: int | None, predictor, data: Dataset, index: int = 3) -> bool:
    """Exercise 00.4: the predictor's label for ``data.val.raw_x[index]``, a single row without the batch axis."""
    label = int(predictor.predict(data.val.raw_x[index : index + 1])[0])
    return judge(
        answer,
        lambda a: int(a) == label,
        f"a predictor takes a batch, shape (n, 64), even for one digit: data.val.raw_x[{index}:{index + 1}] or "
        f"data.val.raw_x[{index}].reshape(1, -1), then take element [0] of the answer.",
        "The batch axis stays even for one example: the compiled program was built for rows of 64 numbers.",
    )


def stored_order_matters(answer: bool | None, data: Dataset) -> bool:
    """Exercise 01.1: with shuffling on, does storing the digits sorted by label move validation accuracy by a point?"""
    hint = (
        "train mlkit.MLP(64, (64,), 10, seed=0) with mlkit.TrainConfig(epochs=15) on data and on sorted_data "
        "(shuffle on for both) and compare history.val_acc[-1]."
    )
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    order = np.argsort(data.train.y, kind="stable")
    sorted_data = with_train(data, data.train.raw_x[order], data.train.y[order])
    config = TrainConfig(epochs=15, progress=False)
    accs = [fit(MLP(data.num_features, (64,), 10, seed=0), d, config).val_acc[-1] for d in (data, sorted_data)]
    matters = abs(accs[0] - accs[1]) > 0.01
    return judge(
        answer,
        _boolean(matters),
        hint,
        f"Validation accuracy {accs[0]:.1%} as stored, {accs[1]:.1%} sorted: each epoch deals a fresh random "
        "order, so the stored one no longer reaches the batches.",
    )


def better_batch_size(answer: int | None, data: Dataset, sizes=(8, 256), epochs: int = 15) -> bool:
    """Exercise 01.2: which of ``sizes`` ends ``epochs`` epochs (learning rate 1e-3) with higher validation accuracy."""
    hint = (
        "train mlkit.MLP(64, (64,), 10, seed=0) with mlkit.TrainConfig(epochs=15, batch_size=b) for b = 8 and 256; "
        "compare history.val_acc[-1]. How many steps does an epoch take at each size?"
    )
    if answer is None:  # the truth costs two runs
        return judge(None, bool, hint)
    acc = {
        size: fit(
            MLP(data.num_features, (64,), data.num_classes, seed=0),
            data,
            TrainConfig(epochs=epochs, batch_size=size, progress=False),
        ).val_acc[-1]
        for size in sizes
    }
    best = max(acc, key=acc.__getitem__)
    return judge(
        answer,
        lambda a: int(a) == best,
        hint,
        "; ".join(f"Batch {s}: {len(data.train) // s} steps per epoch, {acc[s]:.1%}" for s in sizes)
        + ". At the same learning rate an epoch of small batches takes many more steps, each noisier.",
    )


def mnist_at_a_glance(answer: tuple[float, int] | None) -> bool:
    """Exercise 01.3: ("mnist5k"'s smallest class share, its largest pixel value)."""

    images, labels = read_shipped("mnist5k")
    share, top = float(np.bincount(labels).min() / len(labels)), int(images.max())
    return judge(
        answer,
        lambda a: close_to(share, 0.005)(a[0]) and int(a[1]) == top,
        "images, labels = mlkit.data.read_shipped('mnist5k'); np.bincount(labels) / len(labels) and images.max().",
        f"Balanced ({share:.1%} for the rarest digit), but 28x28 pixels from 0 to {top}, not 8x8 from 0 to 16: "
        "standardised, both reach the model as numbers on the same scale.",
    )


def gelu_flops_ratio(answer: float | None, batch: int = 32) -> bool:
    """Exercise 02.1: XLA's FLOPs over the 2·in·out formula for ``MLP(64, (16, 16), 10, activation="gelu")``."""

    sizes = [64, 16, 16, 10]

    def counted(activation: str) -> float:
        graphdef, state = nnx.split(MLP(64, (16, 16), 10, activation=activation, seed=0))
        return bench.flops(lambda s, x: nnx.merge(graphdef, s)(x), state, np.zeros((batch, 64), np.float32))

    ratios = {activation: counted(activation) / byhand.mlp_flops(sizes, batch) for activation in ("relu", "gelu")}
    extra = (ratios["gelu"] - ratios["relu"]) * byhand.mlp_flops(sizes, batch) / (batch * sum(sizes[1:-1]))
    return judge(
        answer,
        close_to(ratios["gelu"], 0.01),
        "in a copy of the FLOPs cell, start with model = mlkit.MLP(64, (16, 16), 10, activation='gelu', seed=0) "
        "so that nnx.split(model) gives the gelu network, and read XLA / formula from its output.",
        f"relu {ratios['relu']:.3f}, gelu {ratios['gelu']:.3f}: gelu costs about {extra:.0f} more operations per "
        "hidden value, still small beside the matrix products.",
    )


def mnist_params(answer: int | None) -> bool:
    """Exercise 02.2: the parameter count of ``MLP(784, (256, 256), 10)``."""

    n = count_params(MLP(784, (256, 256), 10, seed=0))
    return judge(
        answer,
        lambda a: int(a) == n,
        "per layer in × out weights + out biases, for 784 → 256 → 256 → 10; check with mlkit.count_params.",
        "The first layer holds three quarters of them: the input size decides the cost of the first kernel.",
    )


def what_training_changes(answer: str | None) -> bool:
    """Exercise 02.3: which numbers in the explorer's status line training would change (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "training changes the values of W and b, never their shapes. Which of the status line's numbers follow "
        "from the shapes alone?",
        "Parameters and FLOPs follow from the layer sizes alone; training changes only the weights' values, and "
        "so the probabilities.",
    )


def equal_logits(answer: tuple[float, float] | None, num_classes: int = 3) -> bool:
    """Exercise 03.1: (loss, gradient of the true logit) when all ``num_classes`` logits are equal."""

    logits = np.zeros(num_classes)
    loss, grad = byhand.cross_entropy(logits, 0), float(byhand.cross_entropy_grad(logits, 0)[0])
    return judge(
        answer,
        lambda a: close_to(loss, 1e-3)(a[0]) and close_to(grad, 1e-3)(a[1]),
        "equal logits give every class probability 1/3; the loss is -log p_true and the gradient p - one_hot.",
        f"Loss ln 3 = {loss:.4f}, a blind guess; the true logit's gradient is 1/3 - 1 = {grad:.3f} and each "
        "other's +1/3, so a step raises the true logit and lowers the others.",
    )


def shifted_naive_finite(answer: bool | None) -> bool:
    """Exercise 03.2: does the naive formula give a finite loss for ``wrong`` once ``z.max()`` is subtracted?"""
    z = np.array([0.0, 200.0, 0.0], np.float32)
    with np.errstate(divide="ignore"):  # log(0) is the point
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        finite = bool(np.isfinite(-np.log(p[0])))
    return judge(
        answer,
        _boolean(finite),
        "after the shift the true class's exponent is exp(0 - 200): what is that in float32, and what is -log of it?",
        "Subtracting the maximum stops exp from overflowing, but the true class's probability e^-200 still "
        "underflows to 0 and -log 0 is inf: only logsumexp(z) - z_true never forms that probability.",
    )


def best_constant_abs(answer: float | None, y: np.ndarray, step: float = 0.025) -> bool:
    """Exercise 03.3: the constant that minimises the mean absolute error on targets ``y`` (to within ``step``)."""
    median = float(np.median(np.asarray(y)))
    return judge(
        answer,
        close_to(median, step),
        "replace the squared error by jnp.abs(c - y) in mse_of_constant, redraw, and read off the lowest point.",
        f"The median ({median:.3f}, against the mean {float(np.mean(y)):.3f}): under absolute error the best "
        "constant has as many targets above it as below, so a few far-off targets move it less.",
    )


# ---------------------------------------------------------------- 04-07 (backprop, training loop, overfitting, tuning)


def relu_backward(answer: Callable | None) -> bool:
    """Exercise 04.1: ``backward(params, x, y, h, p)`` for lesson 04's network with relu in place of tanh."""

    rng = np.random.default_rng(1)
    params = {
        "W1": rng.normal(size=(2, 8)), "b1": rng.normal(size=8), "W2": rng.normal(size=(8, 2)), "b2": np.zeros(2),
    }  # fmt: skip
    x, y = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)

    def loss(ps):
        logits = jnp.maximum(x @ ps["W1"] + ps["b1"][None], 0) @ ps["W2"] + ps["b2"][None]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(y)[:, None], 1).mean()

    h = np.maximum(x @ params["W1"] + params["b1"], 0)
    p = np.exp(np.asarray(jax.nn.log_softmax(h @ params["W2"] + params["b2"])))

    def right(backward: Callable) -> bool:
        truth = jax.grad(loss)({k: jnp.asarray(v, jnp.float32) for k, v in params.items()})
        mine = backward(params, x, y, h, p)
        return all(np.allclose(mine[k], truth[k], rtol=1e-4, atol=1e-5) for k in params)

    return judge(
        answer,
        right,
        "copy backward and change only the line that goes back through the activation: relu's slope is 1 where "
        "a unit is on (h > 0) and 0 where it is off.",
        "dz1 = dh * (h > 0): the forward pass still keeps all that the backward pass needs, and both checks pass.",
    )


def fastest_learning_rate(answer: float | None, curvature: float = 40.0, steps: int = 200) -> bool:
    """Exercise 04.2: the learning rate that leaves the valley's loss lowest after ``steps`` steps.

    Within 0.0015 below or 0.0005 above it: past it the loss climbs steeply towards the limit 2/k."""

    valley = Valley(curvature)

    def right(a) -> bool:
        grid = np.arange(0.0005, valley.largest_stable_lr, 0.0005)
        final = [valley.value(gradient_descent(valley.grad, (-4.5, 1.5), lr, steps)[-1]) for lr in grid]
        best = float(grid[int(np.argmin(final))])
        return best - 0.0015 <= float(a) <= best + 0.0005

    fastest = 2 / (1 + curvature)
    return judge(
        answer,
        right,
        f"set the steepness to {curvature:g} and {steps} steps, then raise the learning rate until the final loss "
        "stops falling. Which factor, |1 - lr| or |1 - lr·k|, is the larger on each side of that point?",
        f"About 2/(1+k) = {fastest:.4f}, where both directions shrink by the same factor, {1 - fastest:.3f} per step: "
        "even the best step removes under 5% of the error along the valley, so a steep valley needs many steps.",
    )


def network_regimes(answer: dict | None, forward: Callable, backward: Callable, params: dict, x, y) -> bool:
    """Exercise 04.3: at learning rates 0.5, 5 and 20, does the moons network's loss fall every step ("smooth"),
    rise at some steps yet end lower ("bumpy"), or end higher than it started ("diverged")?"""

    def label(lr: float) -> str:
        trained, losses = {k: v.copy() for k, v in params.items()}, []
        for _ in range(300):
            loss, (h, p) = forward(trained, x, y)
            losses.append(float(loss))
            for name, grad in backward(trained, x, y, h, p).items():
                trained[name] -= lr * grad
        if not np.isfinite(losses[-1]) or losses[-1] > losses[0]:
            return "diverged"
        return "bumpy" if (np.diff(losses) > 0).any() else "smooth"

    rates = (0.5, 5, 20)
    return judge(
        answer,
        lambda a: {lr: str(a[lr]).strip().lower() for lr in rates} == {lr: label(lr) for lr in rates},
        "answer a dict like {0.5: 'smooth', 5: '...', 20: '...'}: rerun the training cell with each learning "
        "rate and look at np.diff(losses) (any rise?) and at losses[-1] against losses[0].",
        "At 5 some direction of the loss surface is too steep for the step, so the loss bounces, yet the shallow "
        "directions move ten times faster than at 0.5 and it ends lowest: the network's version of 0.158 "
        "beating 0.1 on the valley. At 20 the bounces win.",
    )


def spirals_capacity(answer: tuple[float, float] | None) -> bool:
    """Exercise 05.1: the playground's validation accuracy on "spirals" with 1 layer of 4 units, then 2 of 16."""

    def right(a) -> bool:
        play = playground(render=False)
        deep = play.set_value("dataset", "spirals")
        play.set_value("width", 4)
        narrow = play.set_value("depth", 1)
        assert deep is not None and narrow is not None, "set_value waits for its run"
        return close_to(narrow.val_acc[-1], 0.01)(a[0]) and close_to(deep.val_acc[-1], 0.01)(a[1])

    return judge(
        answer,
        right,
        "choose spirals, read 'val acc' in the status line, then set width 4 and 1 hidden layer and read it again.",
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
        return _boolean(bool(best - float(np.max(val_acc)) > float(np.ptp(spread))))(a)

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


# ---------------------------------------------------------------- 08 inference


def twice_standardised(answer: tuple[float, float] | None, predictor, data: Dataset) -> bool:
    """Exercise 08.1: (fraction answered, fraction right of those) at threshold 0.9, inputs standardised twice."""
    answered, right = coverage(predictor.predict_proba(data.val.x), data.val.y, 0.9)
    return judge(
        answer,
        lambda a: close_to(answered, 0.01)(a[0]) and close_to(right, 0.01)(a[1]),
        "use coverage(predictor.predict_proba(data.val.x), data.val.y, 0.9): data.val.x is already standardised, "
        "and the predictor standardises again.",
        f"It still answers {answered:.0%} of the digits confidently, and only {right:.0%} of those are right: "
        "confidence says nothing when the inputs are wrong.",
    )


def unsure_at(answer: int | None, predictor, data: Dataset, threshold: float = 0.5) -> bool:
    """Exercise 08.2: how many test digits get "unsure" at ``threshold``."""
    n = int(np.sum(predictor.predict_proba(data.test.raw_x).max(1) < threshold))
    return judge(
        answer,
        lambda a: int(a) == n,
        "count the rows whose largest probability is below the threshold: (probs.max(1) < 0.5).sum().",
        "A lower threshold leaves fewer digits unsure, and lets more mistakes through.",
    )


def temperature_side(answer: str | None, predictor, data: Dataset) -> bool:
    """Exercise 08.3: is the temperature that calibrates the lesson's own model "above" or "below" 1?"""
    side = "above" if fit_temperature(predictor.predict_proba(data.val.raw_x), data.val.y) > 1 else "below"
    return judge(
        answer,
        choice(side),
        "fit_temperature(predictor.predict_proba(data.val.raw_x), data.val.y): on validation, never on test.",
        "Above 1 means the model was overconfident; below 1, underconfident (dropout and batch norm can do that).",
    )


# ---------------------------------------------------------------- 09 latency


def rows_computed(answer: int | None, predictor, batch: int) -> bool:
    """Exercise 09.1: how many rows the compiled function computes for a batch of ``batch`` rows."""
    rows = next((b for b in predictor.buckets if b >= batch), predictor.buckets[-1])
    return judge(
        answer,
        lambda a: int(a) == rows,
        f"the predictor pads a batch up to the next of its buckets, {predictor.buckets}.",
        f"{rows - batch} of the {rows} rows are padding: computed, then thrown away.",
    )


def wider_flops_ratio(answer: float | None, data: Dataset, batch: int = 32) -> bool:
    """Exercise 09.2: FLOPs of a 1024-1024 MLP's inference pass over the 256-256 one's, at ``batch`` rows."""

    def forward_flops(hidden: tuple[int, ...]) -> float:
        graphdef, state = nnx.split(MLP(data.num_features, hidden, data.num_classes, seed=0))
        return bench.flops(lambda s, x: nnx.merge(graphdef, s)(x), state, data.test.x[:batch])

    ratio = forward_flops((1024, 1024)) / forward_flops((256, 256))
    return judge(
        answer,
        close_to(ratio, 0.1 * ratio),
        "count the multiply-adds of each Linear layer, in x out per example: 64x1024 + 1024x1024 + 1024x10 "
        "against 64x256 + 256x256 + 256x10 (or measure both with bench.flops).",
        f"The middle layer dominates: 4x the width is 16x its weights, and the whole pass {ratio:.1f}x.",
    )


def keeps_up(answer: int | None, call_us: dict[int, float], gap_us: float) -> bool:
    """Exercise 09.3: the smallest micro-batch in ``call_us`` (batch -> µs per call) that keeps up with
    one request every ``gap_us`` µs."""
    fast_enough = [b for b, us in sorted(call_us.items()) if b / us > 1 / gap_us]
    smallest = fast_enough[0] if fast_enough else None
    return judge(
        answer,
        lambda a: smallest is not None and int(a) == smallest,
        "a micro-batch of B answers B requests per call: it keeps up when B / (µs per call) is more than "
        "one request per gap, 1 / gap.",
        "Any larger batch also keeps up, but each request waits longer for its batch to fill.",
    )


# ---------------------------------------------------------------- 12 scaling out


def rows_per_device(answer: int | None, batch_size: int, devices: int) -> bool:
    """Exercise 12.1: examples each of ``devices`` devices sees per step of a global batch of ``batch_size``."""

    rows = parallel.per_device_batch(batch_size, parallel.data_mesh(jax.devices()[:devices]))
    return judge(
        answer,
        lambda a: int(a) == rows,
        "the global batch is cut into equal slices, one per device (mlkit.train.parallel.per_device_batch).",
        "With one example per device, each step is all communication and no arithmetic worth sharing.",
    )


def refused_batch(answer: int | None, devices: int, options=(30, 32)) -> bool:
    """Exercise 12.2: which of ``options`` a mesh of ``devices`` devices refuses as a batch size."""
    refused = [b for b in options if b % devices]
    return judge(
        answer,
        lambda a: len(refused) == 1 and int(a) == refused[0],
        "a batch must split into equal slices, one per device: which size does not divide by the device count?",
        "Unequal slices would weight the small slices' examples more: a silently wrong gradient.",
    )


def same_numbers_why(answer: str | None) -> bool:
    """Exercise 12.3: why data-parallel training matches one device (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "write the mini-batch gradient as a mean, then split the sum into equal slices.",
        "The mean of equal-size slice means is the mean of the whole batch, so every device takes the same step.",
    )


# ---------------------------------------------------------------- 13 serving


def status_for(answer: int | None, problem: str) -> bool:
    """Exercise 13.1: the HTTP status the server answers for ``problem`` ("malformed", "too big", "wrong width",
    "queue full")."""
    statuses = {"malformed": 400, "too big": 413, "wrong width": 422, "queue full": 503}
    return judge(
        answer,
        lambda a: int(a) == statuses[problem],
        "the server's module docstring (mlkit.serve.app) lists what each kind of bad request gets; or send one.",
        "4xx: the client must change the request; 5xx: the request was fine, the server could not take it now.",
    )


def why_retry_after(answer: str | None) -> bool:
    """Exercise 13.2: why a full queue answers 503 at once instead of waiting (a, b or c)."""
    return judge(
        answer,
        choice("c"),
        "what happens to every request's latency when requests arrive faster than they are answered?",
        "Past capacity a queue only grows: answering 503 at once keeps the latency of the accepted requests "
        "bounded and tells clients when to come back.",
    )


# ---------------------------------------------------------------- 10 lean models


def pruning_cliff(answer: float | None, data: Dataset, sparsities=(0.5, 0.7, 0.8, 0.95)) -> bool:
    """Exercise 10.1: without batch norm, the first sparsity whose validation accuracy is over 5 points down."""
    model = MLP(data.num_features, (256, 256), data.num_classes, seed=0)
    fit(model, data, TrainConfig(epochs=20, progress=False))
    base = accuracy(freeze(model, data), data.val)
    cliff = next((s for s in sparsities if accuracy(lean(model, data, "float32", s), data.val) < base - 0.05), None)
    return judge(
        answer,
        lambda a: (a is None and cliff is None) or (cliff is not None and close_to(cliff, 1e-9)(a)),
        "train MLP(64, (256, 256), 10, seed=0) for 20 epochs without batch norm, then compare "
        "accuracy(lean(model, data, 'float32', s), data.val) with the unpruned model for each sparsity.",
        "Without batch norm the weights are spread more evenly, so magnitude says more about importance.",
    )


def smallest_int8(answer: float | None, model: nnx.Module, data: Dataset) -> bool:
    """Exercise 10.2: the largest sparsity (a multiple of 0.05) at which int8 stays within a point on validation."""
    base = accuracy(freeze(model, data), data.val)
    grid = np.round(np.arange(0.0, 0.951, 0.05), 2)
    ok = [s for s in grid if accuracy(lean(model, data, "int8", float(s)), data.val) >= base - 0.01]
    best = float(max(ok)) if ok else 0.0
    return judge(
        answer,
        close_to(best, 1e-9),
        "in the lab, choose int8 and raise the sparsity in steps of 0.05 until the validation accuracy "
        "falls more than one point below the float32 model's.",
        "Past it, each step costs more accuracy than the one before: the cliff.",
    )


def fewer_bytes_faster(answer: str | None) -> bool:
    """Exercise 10.3: why bfloat16 weights need not run faster on this CPU (a, b or c)."""
    return judge(
        answer,
        choice("b"),
        "at batch 1 a call is mostly fixed overhead; and what does the CPU compute in, when it has no bfloat16 units?",
        "The CPU converts bfloat16 back to float32 to multiply, and at this size the call is overhead-bound anyway.",
    )


# ---------------------------------------------------------------- 11 adaptability


def inverted_digits(answer: str | None) -> bool:
    """Exercise 11.1: why fine-tuning fails on inverted digits (a, b or c)."""
    return judge(
        answer,
        choice("a"),
        "an inverted digit's background is 16, not 0. Standardised with the original statistics, where is it large?",
        "The border pixels were almost always 0 in training, so their scale is tiny: a background of 16 becomes "
        "huge inputs, and the trained first layer turns them into confident nonsense that 100 examples cannot undo.",
    )


def labels_for_recovery(answer: int | None, model: nnx.Module, data: Dataset, target: float = 0.8) -> bool:
    """Exercise 11.2: the fewest labelled digits (a multiple of 20) that recover ``target`` of the rotate-0.6 drop."""
    frozen = freeze(model, data)
    base, hit = accuracy(frozen, data.val), accuracy(frozen, finetune_data(data, "rotate", 0.6, 20, seed=0).val)
    needed = None
    for n in range(20, 401, 20):
        small = finetune_data(data, "rotate", 0.6, n, seed=0)
        tuned = nnx.clone(model)
        fit(tuned, small, TrainConfig(epochs=20, batch_size=16, progress=False))
        if (evaluate(tuned, small.val)[1] - hit) / (base - hit) >= target:
            needed = n
            break
    return judge(
        answer,
        lambda a: needed is not None and int(a) == needed,
        "fine-tune a copy of the model on finetune_data(data, 'rotate', 0.6, n, seed=0) for n = 20, 40, ... and "
        "compute (tuned shifted val accuracy - frozen's) / (frozen original - frozen shifted).",
        "Recovery grows fast at first, then slowly: the last points of accuracy cost the most labels.",
    )


def replay_forgets_less(answer: bool | None, model: nnx.Module, data: Dataset) -> bool:
    """Exercise 11.3: does mixing 100 old digits into the fine-tuning set keep more of the original accuracy?"""
    small = finetune_data(data, "thicken", 0.6, 100, seed=0)
    old = np.random.default_rng(0).permutation(len(data.train))[:100]
    mixed = with_train(
        small,
        np.concatenate([small.train.raw_x, data.train.raw_x[old]]),
        np.concatenate([small.train.y, data.train.y[old]]),
    )
    mixed = with_preprocessor(mixed, data.preprocessor)
    kept = {}
    for name, sample in (("plain", small), ("replay", mixed)):
        tuned = nnx.clone(model)
        fit(tuned, sample, TrainConfig(epochs=20, batch_size=16, learning_rate=1e-2, progress=False))
        kept[name] = evaluate(tuned, data.val)[1]
    truth = kept["replay"] > kept["plain"]
    return judge(
        answer,
        lambda a: bool(a) is truth and isinstance(a, bool),
        "fine-tune two copies at learning_rate=1e-2, one on the 100 new digits and one on those plus 100 old "
        "ones (with_train, then with_preprocessor(..., data.preprocessor)); compare evaluate(tuned, data.val).",
        f"Original validation accuracy after fine-tuning: {kept['plain']:.1%} without replay, "
        f"{kept['replay']:.1%} with it.",
    )


# ---------------------------------------------------------------- lesson 14's exercises


def colour_conv_params(answer: int | None, filters: int = 8, k: int = 5, channels: int = 3) -> bool:
    """Exercise 14.1: the parameters of a convolution with ``filters`` filters of k x k over a colour image."""
    n = count_params(nnx.Conv(channels, filters, (k, k), rngs=nnx.Rngs(0)))
    return judge(
        answer,
        lambda a: int(a) == n,
        f"a filter spans all {channels} channels: {k}x{k} weights per channel, plus one bias; then {filters} filters.",
        f"A dense layer from a 32x32 colour image to {filters} maps of 32x32 would hold "
        f"{32 * 32 * channels * 32 * 32 * filters:,} weights: the filter is shared across every pixel.",
    )


def costlier_block(answer: str | None, image_shape: tuple[int, int] = (28, 28), channels=(8, 16)) -> bool:
    """Exercise 14.2: which block of ``ConvNet(channels=channels)`` costs more FLOPs per image, "first" or "second"."""
    first, second = block_flops(image_shape, channels)
    return judge(
        answer,
        choice("first" if first > second else "second"),
        "per pixel a convolution costs 2·9·in·out; the first block sees 28x28 pixels and 1 channel in, the second "
        "14x14 pixels and 8 channels in.",
        f"About {first:,} FLOPs for the first block, {second:,} for the second: a quarter of the pixels, but eight "
        "input channels and twice the filters.",
    )


def unscaled_accuracy(answer: float | None, predictor: Predictor, digits: Dataset) -> bool:
    """Exercise 14.3: the test accuracy on the 8x8 digits of the boxed predictor built without ``scale``."""
    unscaled = accuracy(with_resize(predictor, (8, 8), to=(28, 28), box=(20, 20)), digits.test)
    return judge(
        answer,
        close_to(unscaled, 0.005),
        "with_resize(conv_predictor, (8, 8), to=(28, 28), box=(20, 20)), then accuracy(..., digits.test).",
        f"{unscaled:.0%}: the darkest ink is 16 where the model learned 255, so after MNIST's standardisation every "
        "stroke looks like faint smudge. Input processing is a contract on values as well as shapes.",
    )


# ---------------------------------------------------------------- lesson 15's exercises


def ids_of(answer: list[int] | None, tokenizer: Tokenizer, text: str = "great food, awful service") -> bool:
    """Exercise 15.1: the ids the vocabulary gives to the words of ``text``, in order (padding left out)."""
    ids = [int(i) for i in tokenizer.encode([text])[0] if i]
    return judge(
        answer,
        lambda a: [int(i) for i in a] == ids,
        "a word's id is its position in tokenizer.vocab (tokenizer.vocab.index(word)), and 1 when it is not there; "
        "split the text with mlkit.data.text.words first.",
        "That is all encode does, plus padding the row with 0 up to max_len.",
    )


BANNED = ("bad", "terrible", "worst", "awful")


def earns_refund(answer: str | None, predictor: TextPredictor, actions: Mapping[str, str], threshold: float) -> bool:
    """Exercise 15.2: a message without the words in ``BANNED`` that is routed to ``actions["negative"]``."""

    def right(message: str) -> bool:
        if not isinstance(message, str) or set(BANNED) & set(words(message)):
            return False
        return route(predictor.predict_proba([message]), predictor.labels, actions, threshold)[0] == actions["negative"]

    return judge(
        answer,
        right,
        f"a string, without {', '.join(BANNED)}; leaning(word_votes(model, tokenizer), 0, 30) lists the words "
        "that lean negative.",
        "Now try a complaint that needs word order, such as 'I expected it to be good', and watch the bag miss it.",
    )


def people_at(
    answer: int | None, predictor: TextPredictor, messages: Sequence[str], actions: Mapping[str, str], threshold: float
) -> bool:
    """Exercise 15.3: how many of ``messages`` go to ``actions["unsure"]`` at ``threshold``."""
    n = route(predictor.predict_proba(list(messages)), predictor.labels, actions, threshold).count(actions[UNSURE])
    return judge(
        answer,
        lambda a: int(a) == n,
        "route(predictor.predict_proba(inbox), data.labels, actions, 0.95) and count the messages passed to a person.",
        "A higher threshold answers fewer messages and gets more of those right: the person takes the rest.",
    )
