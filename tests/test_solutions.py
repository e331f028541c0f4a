"""Every worked solution in notebooks/solutions/ runs and passes its lesson's self-checks, so neither can rot."""

import runpy
from pathlib import Path

import pytest

from mlkit.lessons import check

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
    assert "Not answered yet. Hint:" in capsys.readouterr().out
    assert check.fewer_bytes_faster("a") is False
    assert "Not quite ('a'). Hint:" in capsys.readouterr().out
    assert check.judge("not a number", check.close_to(1.0, 0.1), "a number") is False  # a wrong type is just wrong
    assert check.fewer_bytes_faster(" B ") is True
