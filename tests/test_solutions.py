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
    offered.add("report")  # check.report() shows and writes the results of these checks
    assert offered == {name for name in check.__all__ if callable(getattr(check, name))}


def test_the_refund_exercise_wants_a_question_and_explains_either_verdict(capsys):
    """15.2: a bag of words offers a refund to a plain question; a real complaint is not the answer, and says why."""
    import mlkit
    from mlkit.infer.text import freeze_text

    data = mlkit.load_dataset("reviews", seed=0)
    model = mlkit.EmbeddingBag(data.tokenizer.size, data.num_classes, dim=16, seed=0)
    mlkit.fit(model, data, mlkit.TrainConfig(epochs=10, learning_rate=3e-3, progress=False))
    predictor = freeze_text(model, data)
    actions = {"negative": "refund", "positive": "thanks", "unsure": "a person"}
    assert check.earns_refund("Does it work with my old charger?", predictor, actions, 0.8)
    right = capsys.readouterr().out
    assert right.startswith("Right.") and "p(negative) = " in right and "'old'" in right and "no intent" in right
    assert not check.earns_refund("It broke after two days and I want my money back.", predictor, actions, 0.8)
    wrong = capsys.readouterr().out
    assert "complaint words (broke)" in wrong and "ending in '?'" in wrong and "p(negative) = " in wrong
    assert not check.earns_refund("Is it available in blue?", predictor, actions, 0.8)
    assert "against the threshold 0.80" in capsys.readouterr().out  # a miss says how far it fell short
