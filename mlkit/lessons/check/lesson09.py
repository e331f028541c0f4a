"""The self-checks of lesson 09 (Inference latency and cost), in exercise order."""

from __future__ import annotations

from flax import nnx

from mlkit import bench
from mlkit.data import Dataset
from mlkit.lessons.check.verdict import close_to, judge
from mlkit.models import MLP


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
