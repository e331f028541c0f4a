"""The self-checks of lesson 15 (Text in: tokenising, a bag of words, a predictor that reads strings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlkit.data import Tokenizer
from mlkit.data.text import words
from mlkit.infer.postprocess import UNSURE
from mlkit.infer.predictor import TextPredictor
from mlkit.infer.text import route
from mlkit.lessons.check.verdict import judge


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
