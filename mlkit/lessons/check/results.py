"""A learner's results for one lesson: which exercises are right, tried or not tried, shown and written as JSON.

``check.report()`` at the end of a lesson prints one line per exercise and writes
``<lesson>_results.json`` beside the notebook, a file a teacher can collect; the
verdicts are the last ones the checks gave in this kernel (:data:`verdict.RESULTS`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path

from mlkit.lessons.check.verdict import RESULTS

PACKAGE = "mlkit.lessons.check"


def report(lesson: int | None = None, path: str | Path | None = None) -> dict:
    """Show and write the results of ``lesson`` (default: the lesson whose check ran last); returns them.

    ``path`` is where the JSON goes (default ``lessonNN_results.json`` in the working directory).
    """
    if lesson is None:
        if not RESULTS:
            raise ValueError("no exercise has been checked in this kernel yet: run an exercise cell first")
        lesson = int(next(reversed(RESULTS)).split(".")[-2].removeprefix("lesson"))
    if not 0 <= lesson <= 15:
        raise ValueError(f"lesson must be a number from 0 to 15, not {lesson!r}")
    module = importlib.import_module(f"{PACKAGE}.lesson{lesson:02d}")
    functions = [f for _, f in inspect.getmembers(module, inspect.isfunction) if f.__module__ == module.__name__]
    numbered = [(found.group(1), f) for f in functions if (found := re.match(r"Exercise (\d\d\.\d)", f.__doc__ or ""))]
    exercises = [
        {"exercise": number, "check": f.__name__, "result": RESULTS.get(f"{module.__name__}.{f.__name__}", "not tried")}
        for number, f in sorted(numbered)
    ]
    results = {
        "lesson": f"{lesson:02d}",
        "exercises": exercises,
        "right": sum(e["result"] == "right" for e in exercises),
        "of": len(exercises),
    }
    for e in exercises:
        print(f"Exercise {e['exercise']}  {e['result']:<9}  ({e['check']})")
    where = Path(path) if path is not None else Path(f"lesson{lesson:02d}_results.json")
    where.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{results['right']} of {results['of']} right; written to {where}")
    return results
