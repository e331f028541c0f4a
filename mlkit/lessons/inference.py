"""Ready-made dashboards for the inference lessons (08-11), built from :mod:`mlkit.lessons.widgets`.

One builder per lesson; the machinery they show lives in :mod:`mlkit.infer`
(post-processing, compression) and :mod:`mlkit.data.shifts` (the shifted digits of 11). Each builder returns a
:class:`~mlkit.lessons.explorers.LessonExplorer` or a
:class:`~mlkit.lessons.widgets.TrainingDashboard`: a notebook shows it, a test
drives it with ``set_value`` and reads ``image``, ``status`` and ``result``.
"""

from __future__ import annotations

import numpy as np
from flax import nnx
from matplotlib.axes import Axes
from matplotlib.ticker import NullLocator

from mlkit import bench
from mlkit.data import Dataset, Preprocessor, shifts
from mlkit.infer import Predictor, accuracy, compress, freeze
from mlkit.infer.compress import PRECISIONS, lean
from mlkit.infer.postprocess import answer, calibration_error, coverage, reliability
from mlkit.lessons import plots
from mlkit.lessons.explorers import LessonExplorer
from mlkit.lessons.widgets import TrainingDashboard, choice_slider, dropdown, float_slider, int_slider, loss_panel
from mlkit.train import TrainConfig, evaluate

# ---------------------------------------------------------------- 08 post-processing and pre-processing

INPUTS = ("as trained", "raw pixels", "standardised twice")  # short: a dropdown cuts long labels


def input_variants(model: nnx.Module, data: Dataset, split: str = "val") -> dict[str, np.ndarray]:
    """Probabilities of ``model`` on one split when its inputs are processed as trained, not at all, or twice."""
    predictor = freeze(model, data)
    skip = freeze(model, preprocessor=Preprocessor.fit(data.train.raw_x, "none"), labels=data.labels)
    part = getattr(data, split)
    return {
        INPUTS[0]: predictor.predict_proba(part.raw_x),
        INPUTS[1]: skip.predict_proba(part.raw_x),
        INPUTS[2]: predictor.predict_proba(part.x),
    }


def confidence_lab(model: nnx.Module, data: Dataset, **kwargs) -> LessonExplorer[dict]:
    """Lesson 08: pick a validation digit and a confidence threshold; see the answer or "unsure", and the coverage.

    A threshold is a choice, so it is explored on the validation split; the test split stays for the final check.
    """
    probs = input_variants(model, data, "val")
    part = data.val
    thresholds = np.linspace(0.0, 1.0, 101)

    def compute(v: dict) -> dict:
        p = probs[v["inputs"]]
        return {
            "probs": p[v["index"]],
            "answer": answer(p[v["index"]], data.labels, v["threshold"])[0],
            "coverage": coverage(p, part.y, v["threshold"]),
            "curve": np.array([coverage(p, part.y, t) for t in thresholds]),
        }

    def digit_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        ax.imshow(part.raw_x[ex.values["index"]].reshape(data.image_shape), cmap="gray_r")
        ax.axis("off")
        ax.set_title(f"validation digit {ex.values['index']}: a {data.labels[part.y[ex.values['index']]]}")

    def probs_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        plots.probabilities(ex.result["probs"], data.labels, ax=ax)
        ax.axhline(ex.values["threshold"], color="crimson", ls="--", lw=1, label="threshold")
        ax.set_title(f"answer: {ex.result['answer']}")
        ax.legend(frameon=False, fontsize=8)

    def curve_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        curve = ex.result["curve"]
        ax.plot(thresholds, curve[:, 0], label="answered")
        ax.plot(thresholds, curve[:, 1], label="right when answered")
        ax.axvline(ex.values["threshold"], color="crimson", ls="--", lw=1)
        ax.set(
            ylim=(0, 1.02),
            xlabel="confidence threshold",
            ylabel="fraction of validation digits",
            title="coverage vs accuracy (validation)",
        )
        ax.legend(frameon=False, fontsize=8, loc="lower left")

    def describe(ex: LessonExplorer[dict]) -> str:
        answered, right = ex.result["coverage"]
        n = round(answered * len(part))
        quality = f"{right:.1%} of those right" if n else "no answer to judge"
        return (
            f"answer {ex.result['answer']} (p = {ex.result['probs'].max():.2f}) · at ≥ "
            f"{ex.values['threshold']:.2f}: answers {n} of {len(part)} validation digits, {quality}"
        )

    controls = {
        "index": int_slider("validation digit", 0, 0, len(part) - 1),
        "threshold": float_slider("threshold", 0.9, 0.0, 0.99, 0.01),
        "inputs": dropdown("inputs", INPUTS),
    }
    kwargs.setdefault("title", "Post-processing: answer or say unsure")
    kwargs.setdefault("figsize", (11.5, 3.2))
    return LessonExplorer(compute, controls, (digit_panel, probs_panel, curve_panel), describe=describe, **kwargs)


def reliability_diagram(
    probs: np.ndarray, y: np.ndarray, ax: Axes, title: str = "", bins: int = 10, legend: bool = True
) -> None:
    """Accuracy against confidence per bin (the bars), the diagonal a calibrated model would follow,
    and the calibration error in the title; a bin's count is written at the foot of its bar, clear of the
    mean-confidence markers (a top probability is never below 1 / classes)."""
    confidence, right, counts = reliability(probs, y, bins)
    centres = (np.arange(bins) + 0.5) / bins
    filled = counts > 0
    ax.bar(centres[filled], right[filled], width=1 / bins, edgecolor="k", color="C0", alpha=0.8, label="accuracy")
    ax.plot(confidence[filled], confidence[filled], "rs", ms=4, label="mean confidence")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for c, n in zip(centres[filled], counts[filled], strict=True):
        ax.text(c, 0.01, str(n), ha="center", va="bottom", fontsize=6, color="white" if n else "k")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.05),
        xlabel="confidence (top probability)",
        ylabel="accuracy in the bin",
        title=f"{title}: calibration error {calibration_error(probs, y, bins):.1%}",
    )
    plots.headroom(ax, 0.14)  # a band above the bars for the legend (on every panel: they may share the y axis)
    if legend:
        ax.legend(frameon=False, fontsize=8, loc="upper center", ncol=2, borderaxespad=0.2)


# ---------------------------------------------------------------- 09 latency and batch size

BATCHES = tuple(2**i for i in range(11))  # 1 ... 1024
TIMINGS = ("compiled function", "predict_proba (end to end)")


def latency_lab(predictor: Predictor, x: np.ndarray, *, repeats: int = 30, **kwargs) -> LessonExplorer[bench.Timing]:
    """Lesson 09: a batch-size slider over measured latency (p50, p99) and throughput; points accumulate."""
    measured: dict[tuple[str, int], bench.Timing] = {}

    def compute(v: dict) -> bench.Timing:
        key = (v["timing"], v["batch"])
        if key not in measured:
            sweep = bench.predictor_sweep(
                predictor, x, (v["batch"],), repeats=repeats, end_to_end=v["timing"] == TIMINGS[1]
            )
            measured[key] = sweep.timings[0]
        return measured[key]

    def points(timing: str) -> list[bench.Timing]:
        return [measured[k] for k in sorted(measured, key=lambda k: k[1]) if k[0] == timing]

    colours = dict(zip(TIMINGS, ("C0", "C1"), strict=True))  # one colour per timing, in both panels

    def batch_axis(ax: Axes) -> None:
        """Every batch size of the slider as a tick, whichever points are measured yet."""
        ax.set_xscale("log", base=2)
        ax.set_xticks(BATCHES, [str(b) for b in BATCHES], fontsize=7)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(BATCHES[0] / 1.4, BATCHES[-1] * 1.4)

    def latency_panel(ex: LessonExplorer[bench.Timing], ax: Axes) -> None:
        for timing in TIMINGS:
            if ts := points(timing):
                sizes = [t.items for t in ts]
                ax.plot(sizes, [t.p50 * 1e6 for t in ts], "o-", ms=4, color=colours[timing], label=timing)
                ax.plot(sizes, [t.p99 * 1e6 for t in ts], "o:", ms=2, alpha=0.4, color=colours[timing])
        ax.plot(ex.result.items, ex.result.p50 * 1e6, "ko", ms=8, fillstyle="none")
        ax.set_yscale("log")
        batch_axis(ax)
        ax.set(xlabel="batch size", ylabel="µs per call", title="latency per call: p50 (faint: p99)")
        plots.legend_on_top(ax, ncol=1)

    def throughput_panel(ex: LessonExplorer[bench.Timing], ax: Axes) -> None:
        for timing in TIMINGS:
            if ts := points(timing):
                ax.plot([t.items for t in ts], [t.throughput for t in ts], "o-", ms=4, color=colours[timing])
        ax.plot(ex.result.items, ex.result.throughput, "ko", ms=8, fillstyle="none")
        ax.set_yscale("log")
        batch_axis(ax)
        ax.set(xlabel="batch size", ylabel="digits per second", title="throughput (colours as on the left)")

    def describe(ex: LessonExplorer[bench.Timing]) -> str:
        t = ex.result
        return (
            f"batch {t.items}: p50 {t.p50 * 1e6:,.0f} µs, p99 {t.p99 * 1e6:,.0f} µs per call · "
            f"{t.throughput:,.0f} digits/s · {t.per_item * 1e6:.2f} µs per digit · compiled in "
            f"{t.compile_s:.2f} s (first time only)"
        )

    controls = {"batch": choice_slider("batch size", BATCHES, 16), "timing": dropdown("timing", TIMINGS)}
    kwargs.setdefault("title", "Latency and throughput against batch size")
    kwargs.setdefault("figsize", (9, 3.3))
    return LessonExplorer(compute, controls, (latency_panel, throughput_panel), describe=describe, **kwargs)


# ---------------------------------------------------------------- 10 lean models


def lean_lab(model: nnx.Module, data: Dataset, *, split: str = "val", **kwargs) -> LessonExplorer[dict]:
    """Lesson 10: precision and sparsity of the folded model; validation accuracy (a choice is made here) against
    bytes, points accumulate."""
    evaluated = getattr(data, split)
    baseline = lean(model, data)
    base_nbytes = baseline.nbytes
    assert base_nbytes is not None, "a lean() predictor holds its arrays"
    base_labels = baseline.predict_proba(evaluated.raw_x).argmax(1)
    measured: dict[tuple[str, float], dict] = {}

    def compute(v: dict) -> dict:
        key = (v["precision"], round(v["sparsity"], 2))
        if key not in measured:
            predictor = lean(model, data, *key)
            row = compress.measure({"x": predictor}, evaluated, name=split, repeats=10).rows[0]
            agree = float(np.mean(predictor.predict_proba(evaluated.raw_x).argmax(1) == base_labels))
            measured[key] = {"row": row, "agree": agree}
        return measured[key]

    def accuracy_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        for precision, marker in zip(PRECISIONS, "os^", strict=True):
            keys = sorted(k for k in measured if k[0] == precision)
            if keys:
                ax.plot(
                    [k[1] for k in keys],
                    [measured[k]["row"].accuracy for k in keys],
                    marker + "-",
                    ms=4,
                    label=precision,
                )
        ax.plot(ex.values["sparsity"], ex.result["row"].accuracy, "ko", ms=9, fillstyle="none")
        ax.set(
            xlim=(-0.03, 1.0),
            ylim=(0, 1.02),
            xlabel="sparsity (fraction of weights set to zero)",
            ylabel=f"{split} accuracy",
            title="quality",
        )
        ax.legend(frameon=False, fontsize=8, loc="lower left")

    def size_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        row = ex.result["row"]
        names = ["float32\n(folded)", "this,\ndense", "this,\nsparse"]  # short: the bars are narrow
        ax.bar(
            names,
            [base_nbytes / 1e3, row.nbytes / 1e3, row.sparse_nbytes / 1e3],
            color=["grey", "steelblue", "seagreen"],
        )
        ax.set(ylabel="kB", title="size")

    def describe(ex: LessonExplorer[dict]) -> str:
        row, v = ex.result["row"], ex.values
        return (
            f"{v['precision']}, {v['sparsity']:.0%} zeros: {row.nbytes:,} bytes stored "
            f"({row.nbytes / base_nbytes:.0%} of float32), {row.sparse_nbytes:,} stored sparse · "
            f"{split} acc {row.accuracy:.1%} · agrees with float32 on {ex.result['agree']:.1%}"
        )

    controls = {
        "precision": dropdown("precision", PRECISIONS),
        "sparsity": float_slider("sparsity", 0.0, 0.0, 0.95, 0.05),
    }
    kwargs.setdefault("title", "Lean models: bits and zeros against accuracy")
    kwargs.setdefault("figsize", (9, 3.3))
    return LessonExplorer(compute, controls, (accuracy_panel, size_panel), describe=describe, **kwargs)


# ---------------------------------------------------------------- 11 drift and fine-tuning


class DriftDashboard(TrainingDashboard):
    """Lesson 11's dashboard: after each run ``result`` holds the four validation accuracies its bars show."""

    result: dict[str, float] | None = None


def drift_lab(model: nnx.Module, data: Dataset, *, seed: int = 0, **kwargs) -> DriftDashboard:
    """Lesson 11: shift the digits, then fine-tune a copy of the trained ``model`` on a few labelled new ones.

    After each run ``result`` holds the four validation accuracies the bars show ("frozen original",
    "frozen shifted", "tuned original", "tuned shifted"): the lab explores choices, so the test split stays out.
    """
    frozen = freeze(model, data)
    original = accuracy(frozen, data.val)
    chance = 1 / data.num_classes
    controls = {
        "kind": dropdown("shift", list(shifts.KINDS), "thicken"),
        "severity": float_slider("severity", 0.6, 0.0, 1.0, 0.1),
        "train_size": int_slider("labelled new", 100, 20, 400, 10),
        "epochs": int_slider("epochs", 20, 1, 60),
    }

    def scores(dashboard: DriftDashboard) -> dict[str, float]:
        d, tuned = dashboard.data, dashboard.model
        assert d is not None and tuned is not None, "scores are read after a run"
        return {
            "frozen shifted": accuracy(frozen, d.val),
            "frozen original": original,
            "tuned shifted": evaluate(tuned, d.val)[1],
            "tuned original": evaluate(tuned, data.val)[1],
        }

    def bars_panel(dashboard: DriftDashboard, ax: Axes) -> None:
        if dashboard.model is None:
            return
        s = scores(dashboard)
        where = np.arange(2)
        for offset, (name, colour) in zip((-0.2, 0.2), (("frozen", "grey"), ("tuned", "C2")), strict=True):
            bars = ax.bar(
                where + offset,
                [s[f"{name} original"], s[f"{name} shifted"]],
                0.4,
                color=colour,
                label="fine-tuned" if name == "tuned" else name,
            )
            ax.bar_label(bars, fmt="{:.0%}", fontsize=8)
        ax.set_xticks(where, ["original digits", f"{dashboard.values['kind']} {dashboard.values['severity']:g}"])
        ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set(ylim=(0, 1.15), ylabel="validation accuracy", title="before and after fine-tuning (dotted: chance)")
        ax.legend(frameon=False, fontsize=8, loc="upper center", ncol=2)

    def describe(dashboard: DriftDashboard) -> str:
        s, v = scores(dashboard), dashboard.values
        dashboard.result = s  # the finished run's four accuracies, for code to read (the bars show them)
        return (
            f"{v['kind']} {v['severity']:g}, {v['train_size']} labelled: shifted val {s['frozen shifted']:.1%} "
            f"frozen → {s['tuned shifted']:.1%} fine-tuned{_recovery(s, chance)} · original val "
            f"{s['frozen original']:.1%} → {s['tuned original']:.1%}"
        )

    kwargs.setdefault("title", "Drift: shift the digits, fine-tune on a few")
    return DriftDashboard(
        lambda v: shifts.finetune_data(data, v["kind"], v["severity"], v["train_size"], seed=seed),
        lambda d, v: nnx.clone(model),
        TrainConfig(batch_size=16, epochs=20, seed=seed),
        controls,
        (bars_panel, loss_panel),
        data_keys=("kind", "severity", "train_size"),
        describe=describe,
        **kwargs,
    )


def _recovery(s: dict[str, float], chance: float) -> str:
    """What fine-tuning did to the drop, in words that stay true when it made things worse."""
    drop, gain = s["frozen original"] - s["frozen shifted"], s["tuned shifted"] - s["frozen shifted"]
    below = f", below chance ({chance:.0%}): systematically wrong" if s["tuned shifted"] < chance else ""
    if drop <= 0:
        return below and f" ({below[2:]})"
    if gain < 0:
        return f" (worse than not fine-tuning{below})"
    return f" (recovers {gain / drop:.0%} of the drop{below})"
