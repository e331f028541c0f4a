"""Every worked solution in notebooks/solutions/ runs and passes its lesson's self-checks, so neither can rot."""

import importlib
import inspect
import re
import runpy
from pathlib import Path

import pytest

from mlkit.lessons import check
from mlkit.lessons.check.verdict import close_to, judge

SOLUTIONS = sorted((Path(__file__).resolve().parent.parent / "notebooks" / "solutions").glob("*.py"))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_worked_solution_passes_its_checks(solution, capsys):
    runpy.run_path(str(solution), run_name="__main__")  # each ends in `assert check.<exercise>(...)`
    out = capsys.readouterr().out
    assert "Right." in out and "Not quite" not in out


def test_every_notebook_with_exercises_has_a_solution():
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    with_checks = {
        p.stem for p in notebooks.glob("*.ipynb") if "check." in p.read_text() and "## Exercises" in p.read_text()
    }
    assert with_checks and with_checks <= {p.stem for p in SOLUTIONS}


def test_a_missing_or_wrong_answer_gets_a_hint_not_an_error(capsys):
    assert check.fewer_bytes_faster(None) is False
    assert "Not answered yet" in capsys.readouterr().out
    assert check.fewer_bytes_faster("a") is False
    assert "Not quite ('a')" in capsys.readouterr().out
    assert judge("not a number", close_to(1.0, 0.1), "a number") is False  # a wrong type is just wrong
    assert check.equal_logits((1.1,)) is False  # so is a wrong shape: one number where two were asked for
    assert "Not quite" in capsys.readouterr().out
    assert check.fewer_bytes_faster(" B ") is True


def test_each_lesson_module_holds_its_own_checks_in_exercise_order():
    """lessonNN.py defines exercises NN.1, NN.2, ... in that order, and ``check`` offers every one of them."""
    offered = set()
    for n in range(16):
        module = importlib.import_module(f"mlkit.lessons.check.lesson{n:02d}")
        checks = [
            f
            for f in vars(module).values()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and not f.__name__.startswith("_")
        ]
        exercises = [re.match(r"Exercise (\d\d\.\d)", f.__doc__ or "") for f in checks]
        assert [m and m.group(1) for m in exercises] == [f"{n:02d}.{i + 1}" for i in range(len(checks))], module
        offered |= {f.__name__ for f in checks}
    assert offered == {name for name in check.__all__ if callable(getattr(check, name))}
