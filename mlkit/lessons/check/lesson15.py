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


# Words a complaint uses: exercise 15.2 asks for a message with none of them, so the bag has only the others to go on.
COMPLAINT = (
    "bad", "terrible", "worst", "awful", "horrible", "poor", "broke", "broken", "disappointed", "disappointing",
    "waste", "refund", "hate", "useless", "junk", "return", "returned", "stopped", "died", "never", "not", "no",
)  # fmt: skip


def _reading(message: str, predictor: TextPredictor, threshold: float) -> str:
    """What the bag made of ``message``: the words it read, p(negative), and which words pushed that way.

    A word's push is what the bag says to that word alone (a bag of one word): its vote plus the bias.
    """
    negative = [str(label) for label in predictor.labels].index("negative")
    tokens = predictor.tokenizer.tokens(message)
    p = float(predictor.predict_proba([message])[0][negative])
    known = [w for w in dict.fromkeys(tokens) if w != "<unk>"]
    alone = {w: float(predictor.predict_proba([w])[0][negative]) for w in known}
    pushing = ", ".join(f"{w!r} ({alone[w]:.2f})" for w in sorted(known, key=alone.__getitem__, reverse=True)[:3])
    return (
        f"The model reads {' '.join(tokens)!r} (the '?' is gone: the tokenizer drops punctuation) and gives "
        f"p(negative) = {p:.2f}, against the threshold {threshold:.2f}. Alone, the words leaning most negative: "
        f"{pushing or 'none it knows'}."
    )


def earns_refund(answer: str | None, predictor: TextPredictor, actions: Mapping[str, str], threshold: float) -> bool:
    """Exercise 15.2: a question (ending in "?") with none of the ``COMPLAINT`` words, which the predictor still
    routes to ``actions["negative"]`` (a refund) at ``threshold``: a bag of words judges words, not intent.

    Either verdict says what the model read and which words pushed it, so a miss is explained.
    """
    reading = ""
    if isinstance(answer, str) and words(answer):
        reading = _reading(answer, predictor, threshold)
    problems = []
    if isinstance(answer, str):
        if not answer.strip().endswith("?"):
            problems.append("it should be a question, ending in '?'")
        if used := sorted(set(COMPLAINT) & set(words(answer))):
            problems.append(f"it uses complaint words ({', '.join(used)}): the point is a message that is not one")

    def right(message: str) -> bool:
        routed = route(predictor.predict_proba([message]), predictor.labels, actions, threshold)[0]
        return not problems and routed == actions["negative"]

    return judge(
        answer,
        right,
        " ".join([*(f"{p[0].upper()}{p[1:]}." for p in problems), *([reading] if reading else [])])
        + (" " if problems or reading else "")
        + "Try a plain question about the product; leaning(word_votes(model, tokenizer), 0, 30) lists the words "
        "that lean negative, and the inbox's last message is a start.",
        reading + " A question is no complaint, but a bag of words sees no intent: words such as these turn up "
        "mostly in the reviews' complaints, so each votes 'negative' wherever it appears.",
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
