"""Grading the exercises with nbgrader: the lessons' own self-checks, scored for a teacher.

``python -m mlkit grade assign COURSE 03_loss`` writes an nbgrader course folder: a
teacher's version of each lesson (``COURSE/source/``) in which every exercise is
two cells, the answer (the worked solution from ``notebooks/solutions/``, marked
as nbgrader's solution region) and a locked test cell worth one point that asserts
the lesson's own check, then runs ``nbgrader generate_assignment``: the student
version (``COURSE/release/``) has each answer back at ``guess = None``.
``python -m mlkit grade autograde COURSE 03_loss`` runs ``nbgrader autograde`` on
the copies in ``COURSE/submitted/<student>/03_loss/`` and prints each student's
score. The checks are the same ones a learner runs, so a grade means what "Right."
means in the notebook.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlkit

NOTEBOOKS = Path(mlkit.__file__).resolve().parent.parent / "notebooks"
STUB = "guess = None  # your answer"
CONFIG = f"""c = get_config()  # noqa: F821 (nbgrader's config file)
c.CourseDirectory.course_id = "mlkit"
c.ClearSolutions.code_stub = {{"python": {STUB!r}}}
c.Execute.timeout = 600  # a lesson's training cells, on a small CPU
"""
CHECK_CALL = re.compile(r"^check\.(\w+)\((.*)\);?\s*(#.*)?$")


def solution_answers(solution: str) -> dict[str, str]:
    """Each check's worked answer, as code: the solution script's lines up to its ``assert check.<name>(x, ...)``
    since the previous check, with that assert turned into ``guess = x`` (the first segment keeps the imports)."""
    tree = ast.parse(solution)
    lines = solution.splitlines()
    answers, start = {}, (tree.body[1].lineno - 1 if ast.get_docstring(tree) else 0)
    for node in tree.body:
        call = node.test if isinstance(node, ast.Assert) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.args):
            continue
        if not (isinstance(call.func.value, ast.Name) and call.func.value.id == "check"):
            continue
        before = "\n".join(lines[start : node.lineno - 1]).strip("\n")
        answers[call.func.attr] = f"{before}\nguess = {ast.get_source_segment(solution, call.args[0])}".strip("\n")
        start = node.end_lineno or node.lineno
    return answers


def teacher_version(lesson: str, notebooks: Path = NOTEBOOKS) -> dict:
    """The lesson's notebook with each exercise cell split into an nbgrader solution cell and a graded test cell."""
    if not (notebooks / f"{lesson}.ipynb").is_file():
        known = " ".join(sorted(p.stem for p in notebooks.glob("[0-9][0-9]_*.ipynb")))
        raise FileNotFoundError(f"no lesson {lesson!r} in {notebooks}: the lessons are {known or 'missing'}")
    notebook = json.loads((notebooks / f"{lesson}.ipynb").read_text())
    answers = solution_answers((notebooks / "solutions" / f"{lesson}.py").read_text())
    cells: list[dict] = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"]).strip()
        last = source.splitlines()[-1] if source else ""
        found = CHECK_CALL.match(last) if cell["cell_type"] == "code" else None
        if found is None or found.group(1) not in answers:
            cells.append(cell)
            continue
        name, arguments = found.group(1), found.group(2)
        hint = [line.partition("#")[2].strip() for line in source.splitlines()[:-1] if line.startswith("guess")]
        answer = "\n".join([*(f"# {h}" for h in hint if h), "### BEGIN SOLUTION", answers[name], "### END SOLUTION"])
        number = sum(1 for c in cells if c["metadata"].get("nbgrader", {}).get("grade")) + 1
        cells.append(_cell(answer, {"grade": False, "solution": True, "locked": False, "grade_id": f"answer-{number}"}))
        test = f"assert check.{name}({arguments})  # exercise {number}: the lesson's own check, one point"
        marks = {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": f"check-{number}"}
        cells.append(_cell(test, marks))
    return {**notebook, "cells": cells}


def assign(course: Path, lessons: list[str], notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Write the course folder's config and teacher versions, and make the student versions; returns the latter."""
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    for lesson in lessons:
        folder = course / "source" / lesson
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{lesson}.ipynb").write_text(json.dumps(teacher_version(lesson, notebooks), indent=1) + "\n")
        _nbgrader(course, "generate_assignment", lesson, "--force")
    return [course / "release" / lesson / f"{lesson}.ipynb" for lesson in lessons]


def autograde(course: Path, lesson: str) -> dict[str, tuple[float, float]]:
    """Score every submitted copy of ``lesson`` with the checks: {student: (points, out of)}."""
    from nbgrader.api import Gradebook

    _nbgrader(course, "autograde", lesson, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {
            submission.student_id: (submission.score, submission.max_score)
            for submission in gradebook.assignment_submissions(lesson)
        }


def _cell(source: str, nbgrader: dict) -> dict:
    return {
        "cell_type": "code",
        "id": nbgrader["grade_id"],
        "execution_count": None,
        "metadata": {"nbgrader": {**nbgrader, "schema_version": 3, "task": False}},
        "outputs": [],
        "source": source,
    }


def _nbgrader(course: Path, *arguments: str) -> None:
    if importlib.util.find_spec("nbgrader") is None:
        raise ModuleNotFoundError("grading needs nbgrader (the grade extra): pip install -e '.[grade]'")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # nbgrader runs alembic
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *arguments],
        cwd=course,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": path},
    )
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {arguments[0]} failed in {course}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
