"""Grading with nbgrader, end to end: student versions made, copies filled in, autograded by the lessons' checks."""

import json
from pathlib import Path

import pytest

from mlkit.lessons import grading

pytest.importorskip("nbgrader", reason="grading needs the grade extra: pip install -e '.[grade]'")

LESSON = "03_loss"  # three exercises, a few seconds to run


def test_the_worked_answers_end_in_the_value_each_check_is_given():
    answers = grading.solution_answers((grading.NOTEBOOKS / "solutions" / f"{LESSON}.py").read_text())
    assert list(answers) == ["equal_logits", "shifted_naive_finite", "best_constant_abs"]
    assert "Worked solutions" not in answers["equal_logits"] and "import jax" in answers["equal_logits"]
    assert answers["shifted_naive_finite"].splitlines()[-1].startswith("guess = bool(")
    assert "import jax" not in answers["best_constant_abs"]  # each later answer holds only its own lines


def filled(student: dict, answers: list[str]) -> dict:
    """The student version with its answer cells, in order, replaced by ``answers``."""
    copy = json.loads(json.dumps(student))
    cells = [c for c in copy["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert len(cells) == len(answers)
    for cell, answer in zip(cells, answers, strict=True):
        cell["source"] = answer
    return copy


def test_assign_then_autograde_gives_full_marks_to_the_solutions_and_none_to_wrong_answers(tmp_path):
    course = tmp_path / "course"
    (released,) = grading.assign(course, [LESSON])
    student = json.loads(released.read_text())
    answers = ["".join(c["source"]) for c in student["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert [a.splitlines()[-1] for a in answers] == [grading.STUB] * 3  # the worked answers are gone
    assert answers[0].startswith("# (loss, gradient of the true logit)")  # the notebook's hint stays above
    tests = [c for c in student["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert [c["metadata"]["nbgrader"]["points"] for c in tests] == [1, 1, 1]

    worked = list(grading.solution_answers((grading.NOTEBOOKS / "solutions" / f"{LESSON}.py").read_text()).values())
    submissions = {
        "solved": filled(student, worked),
        "wrong": filled(student, ["guess = (9.0, 9.0)", "guess = True", "guess = 42.0"]),
        "one_right": filled(student, [worked[0], "guess = None", "guess = 'median'"]),
    }
    for name, notebook in submissions.items():
        folder = course / "submitted" / name / LESSON
        folder.mkdir(parents=True)
        (folder / f"{LESSON}.ipynb").write_text(json.dumps(notebook))
    scores = grading.autograde(course, LESSON)
    assert scores == {"solved": (3.0, 3.0), "wrong": (0.0, 3.0), "one_right": (1.0, 3.0)}


def test_a_lesson_without_worked_solutions_is_refused(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "99_none.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}))
    with pytest.raises(FileNotFoundError, match="99_none"):  # its notebook is there, its solutions are not
        grading.teacher_version("99_none", Path(tmp_path))


def test_report_shows_right_tried_and_not_tried_and_writes_json(tmp_path, monkeypatch, capsys):
    from mlkit.lessons import check
    from mlkit.lessons.check import results as report_module
    from mlkit.lessons.check import verdict

    monkeypatch.setattr(verdict, "RESULTS", {})
    monkeypatch.setattr(report_module, "RESULTS", verdict.RESULTS)
    with pytest.raises(ValueError, match="yet"):
        report_module.report()
    check.equal_logits((1.0986, -0.6667))
    check.shifted_naive_finite(True)  # wrong: the shifted naive loss is still infinite
    results = report_module.report(path=tmp_path / "mine.json")  # the lesson whose check ran last
    assert [e["result"] for e in results["exercises"]] == ["right", "tried", "not tried"]
    assert (results["lesson"], results["right"], results["of"]) == ("03", 1, 3)
    assert json.loads((tmp_path / "mine.json").read_text()) == results
    assert "1 of 3 right" in capsys.readouterr().out
    check.shifted_naive_finite(None)  # the last verdict counts: not answered now
    assert report_module.report(3, tmp_path / "again.json")["exercises"][1]["result"] == "not tried"
    with pytest.raises(ValueError, match="0 to 15"):
        report_module.report(16)


def test_an_unknown_lesson_names_the_lessons_there_are(tmp_path, capsys):
    from mlkit.__main__ import main

    assert main(["grade", "assign", str(tmp_path / "course"), "3_loss"]) == 2
    assert "03_loss" in capsys.readouterr().err
