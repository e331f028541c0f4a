"""Lesson 15, text in: what an embedding bag learned, its training dashboard, and a message router to try.

``word_votes`` reads the trained :class:`mlkit.models.EmbeddingBag` back as one
vote per word and class (the mean of a text's votes, plus the bias, is its
logits). ``text_lab`` trains the model over vocabulary size, embedding size
and epochs; ``message_lab`` sends a typed message through a frozen
:class:`~mlkit.infer.predictor.TextPredictor` and the routing table of the lesson.
The self-checks of the lesson's exercises close the module.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes

from mlkit.data import Dataset, Tokenizer, with_tokenizer
from mlkit.infer.postprocess import UNSURE
from mlkit.infer.predictor import TextPredictor
from mlkit.infer.text import route
from mlkit.lessons import plots
from mlkit.lessons.explorers import LessonExplorer
from mlkit.lessons.widgets import TrainingDashboard, accuracy_panel, float_slider, int_slider, log_slider
from mlkit.models import EmbeddingBag, count_params
from mlkit.train import TrainConfig


def word_votes(model: EmbeddingBag, tokenizer: Tokenizer) -> dict[str, np.ndarray]:
    """Each vocabulary word's vote for each class, ``(vocab_size, classes)``: its embedding times the head.

    The model's logits for a text are the mean of its words' votes plus the head's bias, so a word's
    vote is exactly what it adds. Returned by word, padding and unknown left out.
    """
    votes = np.asarray(model.embed.embedding[...]) @ np.asarray(model.head.kernel[...])
    return {word: votes[i] for i, word in enumerate(tokenizer.vocab) if i >= 2}


def leaning(votes: dict[str, np.ndarray], label: int, n: int = 8) -> list[str]:
    """The ``n`` words whose votes lean most towards class ``label`` (against the mean of the others)."""
    lean = {w: v[label] - np.delete(v, label).mean() for w, v in votes.items()}
    return sorted(lean, key=lambda w: -lean[w])[:n]


def unknown_share(data: Dataset, split: str = "val") -> float:
    """Fraction of the words in a split's texts that the vocabulary does not hold (read as ``<unk>``)."""
    ids = getattr(data, split).x
    return float((ids == 1).sum() / max((ids > 0).sum(), 1))


def vocabulary(data: Dataset) -> Tokenizer:
    """A text set's tokenizer, or a ValueError for a set of numbers."""
    if data.tokenizer is None:
        raise ValueError(f"Expected a text set (e.g. reviews); {data.name!r} has no tokenizer.")
    return data.tokenizer


def text_lab(data: Dataset, seed: int = 0, **kwargs) -> TrainingDashboard:
    """Lesson 15: vocabulary size (refitted on the training texts), embedding size, epochs and learning
    rate of an embedding bag; validation accuracy and the words that lean most to each side."""
    tokenizer = vocabulary(data)
    controls = {
        "max_words": int_slider("vocabulary", 2000, 50, 4000, 50),
        "dim": int_slider("embedding size", 16, 2, 64, 2),
        "epochs": int_slider("epochs", 10, 1, 40),
        "learning_rate": log_slider("learning rate", 3e-3, 1e-4, 1e-1),
    }

    def retokenized(v: dict) -> Dataset:
        return with_tokenizer(
            data, Tokenizer.fit(data.train.raw_x, max_words=v["max_words"], max_len=tokenizer.max_len)
        )

    def words_panel(dashboard: TrainingDashboard, ax: Axes) -> None:
        model, d = dashboard.model, dashboard.data
        if not isinstance(model, EmbeddingBag) or d is None or d.tokenizer is None:
            return
        votes = word_votes(model, d.tokenizer)
        shown = [leaning(votes, c, 6) for c in range(d.num_classes)]
        lean = [votes[w][c] - np.delete(votes[w], c).mean() for c, ws in enumerate(shown) for w in ws]
        names = [f"{w} ({d.labels[c]})" for c, ws in enumerate(shown) for w in ws]
        ax.barh(names[::-1], lean[::-1], color=[f"C{c}" for c, ws in enumerate(shown) for _ in ws][::-1])
        ax.tick_params(axis="y", labelsize=7)
        ax.set(xlabel="vote for its class, over the others", title="words that lean most")

    def describe(dashboard: TrainingDashboard) -> str:
        history, model, d = dashboard.history, dashboard.model, dashboard.data
        if history is None or model is None or d is None or d.tokenizer is None or not history.epochs:
            return ""
        return (
            f"{d.tokenizer.size:,} ids ({unknown_share(d):.0%} of validation words unknown) · "
            f"{count_params(model):,} parameters · val acc {history.val_acc[-1]:.1%} "
            f"after {history.epochs} epoch{'s' * (history.epochs != 1)}"
        )

    kwargs.setdefault("title", "Embedding bag: vocabulary and size")
    return TrainingDashboard(
        retokenized,
        lambda d, v: EmbeddingBag(vocabulary(d).size, d.num_classes, dim=v["dim"], seed=seed),
        TrainConfig(seed=seed),
        controls,
        (accuracy_panel, words_panel),
        data_keys=("max_words",),
        describe=describe,
        **kwargs,
    )


def message_lab(
    predictor: TextPredictor, actions: Mapping[str, str], *, message: str = "", threshold: float = 0.8, **kwargs
) -> LessonExplorer[dict]:
    """Lesson 15: type a message and set the confidence threshold; see the words the model reads, its
    probabilities and where the message is routed (``actions`` maps each label, and "unsure", to one)."""
    if UNSURE not in actions or not set(map(str, predictor.labels)) <= set(actions):
        raise ValueError(f"actions needs an entry for every label {list(predictor.labels)} and for {UNSURE!r}.")

    def compute(v: dict) -> dict:
        try:
            probs = predictor.predict_proba([v["message"]])[0]
        except ValueError as e:  # an empty message, or one that is too long: the predictor says why
            return {"error": str(e), "tokens": [], "probs": None}
        tokens = predictor.tokenizer.tokens(v["message"])
        return {
            "error": "",
            "tokens": tokens,
            "probs": probs,
            "to": route(probs[None], predictor.labels, actions, v["threshold"])[0],
        }

    def probs_panel(ex: LessonExplorer[dict], ax: Axes) -> None:
        if ex.result["probs"] is None:  # what the status line says, where the bars would be
            ax.set_title("no answer")
            plots.message(ax, ex.result["error"])
            return
        plots.probabilities(ex.result["probs"], predictor.labels, ax=ax)
        ax.axhline(ex.values["threshold"], color="crimson", ls="--", lw=1, label="threshold")
        ax.set_title(f"route: {ex.result['to']}")
        ax.legend(frameon=False, fontsize=8)

    def describe(ex: LessonExplorer[dict]) -> str:
        r = ex.result
        if r["error"]:
            return f"error: {r['error']}"
        return f"the model reads: {' '.join(r['tokens'])}\np = {r['probs'].max():.2f} → {r['to']}"

    controls = {
        "message": widgets.Text(
            value=message,
            description="message",
            continuous_update=False,
            style={"description_width": "130px"},
            layout=widgets.Layout(width="calc(100% - 4px)"),
        ),
        "threshold": float_slider("threshold", threshold, 0.5, 0.99, 0.01),
    }
    kwargs.setdefault("title", "Route a customer's message")
    return LessonExplorer(compute, controls, (probs_panel,), describe=describe, **kwargs)
