"""Text in: a tokenizer turns strings into the rows of numbers a model takes, fitted on the training split only.

Strings cannot enter a compiled XLA program, so tokenising happens in Python,
before the model: each text is lower-cased, split into words, and each word is
looked up in a vocabulary learned from the training texts. Two ids are reserved:
``0`` pads a short text up to ``max_len`` and ``1`` stands for a word the
vocabulary does not hold (``<unk>``), so a word first seen at inference time
still gets an id. A text of more than ``max_len`` words is truncated: only its
first ``max_len`` words are read. A text of more than ``MAX_CHARS`` characters, an
empty one, or one with no word in it is refused with an error naming its row.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAD, UNKNOWN = "<pad>", "<unk>"
WORD = re.compile(r"\w+(?:'\w+)*")  # runs of letters or digits, with inner apostrophes: "don't" is one word
KIND = "words"  # the one splitting rule; saved with the vocabulary so a reader can check it knows it
MAX_CHARS = 10_000  # longest text read, in characters (a message, not a book)
MAX_LEN = 4_096  # largest max_len: tokens per row
MAX_VOCAB = 1_000_000
MAX_WORD_CHARS = 100


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order (punctuation dropped)."""
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Tokenizer:
    """A vocabulary (``vocab[i]`` is the word of id ``i``) and the row length ``max_len`` it encodes to."""

    vocab: tuple[str, ...]
    max_len: int = 40
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _problem(self.vocab, self.max_len)
        if problem:
            raise ValueError(f"Not a valid tokenizer: {problem}.")
        object.__setattr__(self, "_ids", {word: i for i, word in enumerate(self.vocab)})

    def __repr__(self) -> str:
        return f"Tokenizer({self.size:,} ids: {', '.join(self.vocab[:6])}, ...; max_len={self.max_len})"

    @classmethod
    def fit(cls, texts: Iterable[str], *, max_words: int = 2000, max_len: int = 40) -> Tokenizer:
        """The ``max_words`` commonest words of ``texts`` (the training split only), commonest first.

        Ties are broken alphabetically, so the same texts always give the same vocabulary.
        """
        if not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive whole number, got {max_words!r}.")
        counts = collections.Counter(w for text in _checked(texts) for w in words(text))
        kept = sorted(counts, key=lambda w: (-counts[w], w))[:max_words]
        return cls((PAD, UNKNOWN, *kept), max_len)

    @property
    def size(self) -> int:
        """Number of ids, padding and unknown included (what an embedding table needs)."""
        return len(self.vocab)

    def tokens(self, text: str) -> list[str]:
        """The words of ``text`` the model reads (at most ``max_len``), unknown ones as ``<unk>``."""
        return [w if w in self._ids else UNKNOWN for w in words(text)[: self.max_len]]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids, int32 of shape ``(len(texts), max_len)``: known words' ids, 1 for unknown, 0 after the end."""
        rows = _checked(texts)
        ids = np.zeros((len(rows), self.max_len), np.int32)
        for i, text in enumerate(rows):
            found = words(text)
            if not found:
                raise ValueError(
                    f"Text {i} ({text[:40]!r}) has no words in it (empty, blank or punctuation only): "
                    f"there is nothing to classify. Drop it, or answer it without the model."
                )
            ids[i, : min(len(found), self.max_len)] = [self._ids.get(w, 1) for w in found[: self.max_len]]
        return ids

    def decode(self, ids: np.ndarray) -> list[str]:
        """Each row of ids as the words it stands for, padding left out."""
        return [" ".join(self.vocab[int(i)] for i in row if i != 0) for row in np.atleast_2d(ids)]

    def to_dict(self) -> dict:
        return {"kind": KIND, "vocab": list(self.vocab), "max_len": self.max_len}

    @classmethod
    def from_dict(cls, d: object) -> Tokenizer:
        """A tokenizer from ``to_dict``'s output, checked field by field (it may come from a file)."""
        if not (isinstance(d, dict) and d.keys() == {"kind", "vocab", "max_len"} and d["kind"] == KIND):
            raise ValueError(f'Not a tokenizer: expected {{"kind": "{KIND}", "vocab": [...], "max_len": n}}.')
        if not isinstance(d["vocab"], list):
            raise ValueError('Not a tokenizer: "vocab" should be a list of words.')
        return cls(tuple(d["vocab"]), d["max_len"])


def _checked(texts) -> list[str]:
    """``texts`` as a list of str, or a ValueError naming the first row that is not a text one can read."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"Expected a list of texts; got one {type(texts).__name__}. For one text use [text].")
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise ValueError(f"Expected a list of texts (1-D); got an array of shape {texts.shape}.")
    try:
        rows = list(texts)
    except TypeError:
        raise ValueError(f"Expected a list of texts; got {type(texts).__name__}.") from None
    for i, text in enumerate(rows):
        if not isinstance(text, str):
            fix = " Decode it first: text.decode('utf-8')." if isinstance(text, bytes) else ""
            shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
            kind = "missing (None)" if text is None else f"a {type(text).__name__}, {shown},"
            raise ValueError(f"Expected a list of texts; text {i} is {kind} not a string.{fix}")
        if len(text) > MAX_CHARS:
            raise ValueError(
                f"Text {i} has {len(text):,} characters; at most {MAX_CHARS:,} are read. Split it into "
                f"messages, or cut it (only the first max_len words are read anyway)."
            )
    return [str(text) for text in rows]


def _problem(vocab, max_len) -> str | None:
    """What is wrong with a vocabulary and row length (they may come from a file), or None."""
    if not (isinstance(max_len, int) and not isinstance(max_len, bool) and 1 <= max_len <= MAX_LEN):
        return f"max_len should be a whole number from 1 to {MAX_LEN}, got {max_len!r}"
    if not (isinstance(vocab, tuple) and 2 <= len(vocab) <= MAX_VOCAB and vocab[:2] == (PAD, UNKNOWN)):
        return f"the vocabulary should start with {PAD!r}, {UNKNOWN!r} and hold at most {MAX_VOCAB:,} words"
    if not all(isinstance(w, str) and 0 < len(w) <= MAX_WORD_CHARS for w in vocab):
        return f"every word should be a string of 1 to {MAX_WORD_CHARS} characters"
    if len(set(vocab)) != len(vocab):
        return "the vocabulary holds a word twice"
    return None


def read_texts(path: str | os.PathLike) -> list[str]:
    """The texts of a UTF-8 text file, one per line: what ``python -m mlkit predict`` reads.

    A blank line between messages is refused rather than skipped, so answer ``i`` is always line ``i + 1``'s
    (blank lines at the end are only the end of the file).
    """
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"{path} is {'a directory' if source.is_dir() else 'missing'}; expected a text file.")
    try:
        lines = source.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e}); save it as UTF-8, one message per line.") from e
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path} holds no text; expected one message per line.")
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank:
        raise ValueError(
            f"{path}: line {blank[0]} is blank{f' (and {len(blank) - 1} more)' if len(blank) > 1 else ''}. Expected "
            f"one message per line, each line answered in order: remove the blank lines."
        )
    return lines
