"""Self-checks for the lessons' exercises: pass your answer, get "Right" or a hint, never the solution.

Each check works the true answer out itself, from the data and models the
notebook already holds (or by training its own, with fixed seeds), so it is as
honest as the lesson's asserts. With no answer yet (``None``) a check prints
the hint and returns ``False`` without raising, so a notebook still runs top to
bottom. Worked solutions live in ``solutions/`` beside the notebooks; the test
suite runs every one of them against these checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flax import nnx

from mlkit.data import Dataset, with_preprocessor, with_train
from mlkit.infer import accuracy, freeze
from mlkit.infer.compress import lean
from mlkit.infer.drift import finetune_data
from mlkit.infer.postprocess import coverage, fit_temperature
from mlkit.models import MLP
from mlkit.train import TrainConfig, evaluate, fit


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
    from mlkit.models import count_params

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
    from mlkit.data import read_shipped

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
    from mlkit.bench import flops
    from mlkit.lessons import byhand

    sizes = [64, 16, 16, 10]

    def counted(activation: str) -> float:
        graphdef, state = nnx.split(MLP(64, (16, 16), 10, activation=activation, seed=0))
        return flops(lambda s, x: nnx.merge(graphdef, s)(x), state, np.zeros((batch, 64), np.float32))

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
    from mlkit.models import count_params

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
    from mlkit.lessons import byhand

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
    from mlkit import bench  # the lesson's timing library; imported here so the checks load without it

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
    from jax import devices as all_devices

    from mlkit.train import parallel

    rows = parallel.per_device_batch(batch_size, parallel.data_mesh(all_devices()[:devices]))
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
