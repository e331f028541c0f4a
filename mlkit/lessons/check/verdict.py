"""How every self-check answers: "Right." with why, or "Not quite" with a hint, and never the solution.

A check works out the true answer and hands :func:`judge` a test for the
learner's; :func:`close_to`, :func:`choice` and :func:`boolean` build the tests
the checks share (a number within a tolerance, a letter or word, a True/False).
Each verdict is also kept in :data:`RESULTS`, for :func:`mlkit.lessons.check.report`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

RESULTS: dict[str, str] = {}
"""The last verdict of each check run in this kernel, by "module.check": "right", "tried" or "not tried"."""


def judge(answer: Any, right: Callable[[Any], bool], hint: str, why: str = "") -> bool:
    """Print whether ``answer`` passes ``right``, with ``hint`` when it does not (or is missing).

    ``None`` means "not answered yet": the hint is printed and the notebook runs on. An answer of the
    wrong type or shape (one that makes ``right`` raise a TypeError, ValueError, IndexError or KeyError)
    is a wrong answer, not an error.
    """
    caller = inspect.currentframe().f_back  # type: ignore[union-attr]  # the check that asks
    name = f"{caller.f_globals['__name__']}.{caller.f_code.co_name}"  # type: ignore[union-attr]
    if answer is None:
        print(f"Not answered yet. Hint: {hint}")
        RESULTS[name] = "not tried"
        return False
    try:
        ok = bool(right(answer))
    except (TypeError, ValueError, LookupError):
        ok = False
    print(f"Right. {why}".strip() if ok else f"Not quite ({answer!r}). Hint: {hint}")
    RESULTS[name] = "right" if ok else "tried"
    return ok


def close_to(expected: float, tolerance: float) -> Callable[[Any], bool]:
    """A number within ``tolerance`` of ``expected``."""
    return lambda answer: abs(float(answer) - expected) <= tolerance


def choice(expected: str) -> Callable[[Any], bool]:
    """The letter or word ``expected`` (lower case), whatever the case and surrounding spaces of the answer."""
    return lambda answer: str(answer).strip().lower() == expected


def boolean(expected: bool) -> Callable[[Any], bool]:
    """A True/False answer (Python, NumPy or JAX boolean) equal to ``expected``; 1 or "yes" do not count."""
    return lambda answer: (
        (isinstance(answer, bool) or getattr(answer, "dtype", None) == np.bool_) and (bool(answer) is expected)
    )
