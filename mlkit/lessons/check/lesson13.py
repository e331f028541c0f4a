"""The self-checks of lesson 13 (Serving under load), in exercise order."""

from __future__ import annotations

from mlkit.lessons.check.verdict import choice, judge


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
