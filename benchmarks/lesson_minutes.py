"""How long each lesson takes, measured: reading words, Run All time, exercises and their worked solutions.

``python benchmarks/lesson_minutes.py`` (all lessons) or ``python benchmarks/lesson_minutes.py 03_loss 13_serving``
(only those; the others keep their numbers) writes ``benchmarks/lesson_minutes.json`` and rewrites the table of
minutes in the instructor guide (``docs/teaching.md``, between its ``<!-- minutes`` and ``<!-- end minutes -->``
lines) from it; ``--page`` rewrites only the table. ``tests/test_teaching.py`` checks that the page's table is the
one the JSON gives, so the two cannot drift apart. Per lesson it records:

* ``words``: the words of the markdown cells (prose, headings, exercise texts; fenced code, HTML tags and LaTeX
  dropped), and ``reading_min`` at ``READING_WPM`` words a minute, a usual speed for technical text;
* ``run_all_s``: the time nbclient takes to run the notebook top to bottom with the "mlkit" kernel (start of the
  kernel included), from the notebook's folder as JupyterLab and nbval do, and the load average (1 minute) just
  before and after, since a busy machine makes every number larger; ``slowest_cells``: the three cells that took
  longest, from the timings nbclient writes into each cell's metadata, and ``dashboard_cells``: the cells that show a
  dashboard, with their time (the cell returns once the dashboard is drawn, and a run it starts may go on after
  it: a lower bound on what one change costs), and ``failed_cells``: cells that raised without being tagged
  raises-exception (the run goes on past them, so a lesson being edited still gets its time); and
  ``dashboard_changes``: after Run All, in the same kernel, every control of every dashboard the lesson left in
  its namespace is moved one notch (``Explorer.set_value``, which returns when the change has been trained,
  measured or redrawn) and timed; that cell's time is not in ``run_all_s``;
* ``exercises``: the exercises under "## Exercises" (a bold "**1.**" paragraph each), ``solution_s``: the time the
  worked solution (``notebooks/solutions/NN_name.py``) takes to run as a script, and ``exercise_min``: an
  estimate, ``EXERCISE_MIN`` minutes an exercise (reading it, changing a copy of a cell, running, one retry after a
  hint), which nobody has timed with learners.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
OUT = Path(__file__).resolve().parent / "lesson_minutes.json"
PAGE = REPO / "docs" / "teaching.md"
READING_WPM = 200  # words a minute for technical prose read with care
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXERCISE_MIN = 8  # minutes an exercise, an allowance (not measured with learners)
PROBE = "dashboard changes"  # the first line of the cell appended to each lesson, which times its dashboards

# Appended to a copy of each lesson and run after it in the same kernel: every dashboard the lesson left in its
# namespace (an mlkit.lessons.widgets.Explorer) gets each of its controls moved one notch, as a learner would,
# through Explorer.set_value, which returns once the change's run, measurement or redraw has finished.
PROBE_CELL = f"""# {PROBE}
import json as _json, math as _math, time as _time
import ipywidgets as _ipw
from mlkit.lessons.widgets import Explorer as _Explorer

def _next_value(control):
    if isinstance(control, _ipw.widgets.widget_selection._Selection):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return values[(control.index + 1) % len(values)] if len(values) > 1 else None
    if isinstance(control, _ipw.Checkbox):
        return not control.value
    if isinstance(control, _ipw.FloatLogSlider):
        exponent = _math.log(control.value, control.base)
        up = exponent + control.step <= control.max + 1e-9
        return control.base ** (exponent + (control.step if up else -control.step))
    if isinstance(control, (_ipw.IntSlider, _ipw.FloatSlider, _ipw.BoundedIntText, _ipw.BoundedFloatText)):
        up = control.value + control.step <= control.max
        return control.value + (control.step if up else -control.step)
    return None

_changes = []
for _name, _dashboard in list(globals().items()):
    if _name.startswith("_") or not isinstance(_dashboard, _Explorer):
        continue
    for _control_name, _control in _dashboard.controls.items():
        _value = _next_value(_control)
        if _value is None:
            continue
        _start = _time.perf_counter()
        _dashboard.set_value(_control_name, _value)
        _changes.append({{"dashboard": _name, "control": _control_name, "s": round(_time.perf_counter() - _start, 2)}})
print(_json.dumps(_changes))
"""


def prose(markdown: str) -> str:
    """The words a reader reads: fenced code, HTML tags and comments, display and inline LaTeX and link targets out."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.DOTALL)
    text = re.sub(r"<!--.*?-->|<[^>]+>", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", " ", text, flags=re.DOTALL)
    return re.sub(r"\]\([^)]*\)", "]", text)


def words(notebook: nbformat.NotebookNode) -> int:
    """The number of words (runs of letters or digits) in the notebook's markdown cells."""
    return sum(len(re.findall(r"[\w'’-]+", prose(c.source))) for c in notebook.cells if c.cell_type == "markdown")


def exercises(notebook: nbformat.NotebookNode) -> int:
    """The numbered exercises ("**1.** ..." at the start of a line) in the "## Exercises" section."""
    count, inside = 0, False
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            if cell.source.startswith("## "):
                inside = cell.source.startswith("## Exercises")
            count += len(re.findall(r"^\*\*\d+\.\*\*", cell.source, flags=re.MULTILINE)) if inside else 0
    return count


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """How long a cell ran, from the timestamps nbclient records in its metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (parse(end) - parse(start)).total_seconds()


def run_all(path: Path) -> dict:
    """Run the notebook with nbclient and the mlkit kernel; the time, the load around it and the slowest cells."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE_CELL))
    client = NotebookClient(
        notebook,
        kernel_name="mlkit",
        timeout=900,
        record_timing=True,
        allow_errors=True,  # a cell another change broke is recorded in "failed_cells", and the run goes on
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    client.execute()
    probe = notebook.cells.pop()
    changes = json.loads("".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout") or "[]")
    seconds = time.perf_counter() - start - cell_seconds(probe)
    timed = sorted(
        ((cell_seconds(c), i, c.source.strip().split("\n")[0][:70]) for i, c in enumerate(notebook.cells)),
        reverse=True,
    )
    slowest = [{"cell": i + 1, "s": round(s, 1), "first_line": line} for s, i, line in timed[:3] if s > 0]
    return {
        "run_all_s": round(seconds, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "slowest_cells": slowest,
        "dashboard_cells": [  # a cell whose output is a widget: the time to build and draw the dashboard
            {"cell": i + 1, "s": round(cell_seconds(c), 1), "first_line": c.source.strip().split("\n")[0][:70]}
            for i, c in enumerate(notebook.cells)
            if any(WIDGET_VIEW in o.get("data", {}) for o in c.get("outputs", []))
        ],
        "dashboard_changes": changes,
        "failed_cells": [
            i + 1
            for i, c in enumerate(notebook.cells)
            if any(o.get("output_type") == "error" for o in c.get("outputs", []))
            and "raises-exception" not in c.metadata.get("tags", [])
        ],
    }


def solution_seconds(stem: str) -> dict:
    """How long the worked solution takes to run as a script, and whether it passed (its checks said Right)."""
    script = NOTEBOOKS / "solutions" / f"{stem}.py"
    if not script.is_file():
        return {"solution_s": None}
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], cwd=NOTEBOOKS, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    passed = done.returncode == 0 and "Not quite" not in done.stdout
    return {"solution_s": round(seconds, 1), "solution_load_before": round(load, 2), "solution_passed": passed}


def measure(stem: str) -> dict:
    path = NOTEBOOKS / f"{stem}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    n_words, n_exercises = words(notebook), exercises(notebook)
    row = {
        "title": notebook.cells[0].source.split("\n")[0].lstrip("# ").strip(),
        "words": n_words,
        "reading_min": round(n_words / READING_WPM, 1),
        "exercises": n_exercises,
        "exercise_min": n_exercises * EXERCISE_MIN,
    }
    row.update(run_all(path))
    row.update(solution_seconds(stem))
    return row


def minutes_table(results: dict) -> str:
    """The instructor guide's table of minutes, from the JSON this script writes."""
    lessons = results["lessons"]
    rows = [
        f"| lesson | words | reading min ({results['reading_wpm']} words/min) | Run All s (load before/after) "
        "| slowest cell s | dashboard change s: median / slowest (changes) | exercises | exercise min (estimate) "
        "| worked solution s | slides |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for stem, r in lessons.items():
        slowest = r["slowest_cells"][0]["s"] if r["slowest_cells"] else 0
        changes = sorted(c["s"] for c in r.get("dashboard_changes", []))
        dashboards = f"{changes[len(changes) // 2]:.1f} / {changes[-1]:.1f} ({len(changes)})" if changes else "none"
        failed = f" ({len(r['failed_cells'])} cell failed)" if r.get("failed_cells") else ""  # run on past it
        rows.append(
            f"| [{stem}](../notebooks/{stem}.ipynb) | {r['words']:,} | {r['reading_min']:.1f} "
            f"| {r['run_all_s']:.0f} ({r['load_before']:.1f}/{r['load_after']:.1f}){failed} | {slowest:.0f} "
            f"| {dashboards} | {r['exercises']} | {r['exercise_min']} | {r['solution_s']:.0f} "
            f'| <a href="../slides/{stem}.slides.html">slides</a> |'
        )
    total = lambda key: sum(r[key] or 0 for r in lessons.values())
    rows.append(
        f"| all {len(lessons)} | {total('words'):,} | {total('reading_min'):.0f} | {total('run_all_s') / 60:.0f} min "
        f"| | | {total('exercises')} | {total('exercise_min')} | {total('solution_s') / 60:.0f} min | |"
    )
    return "\n".join(rows)


def write_page(results: dict, page: Path = PAGE) -> None:
    """Replace the table between the page's ``<!-- minutes`` and ``<!-- end minutes -->`` lines."""
    text = page.read_text(encoding="utf-8")
    found = re.search(r"(^<!-- minutes[^\n]*\n)(.*?)(^<!-- end minutes -->)", text, flags=re.DOTALL | re.MULTILINE)
    if found is None:
        raise ValueError(f"{page} has no <!-- minutes ... --> and <!-- end minutes --> lines to put the table between")
    table = "\n" + minutes_table(results) + "\n\n"
    page.write_text(text[: found.start(2)] + table + text[found.end(2) :], encoding="utf-8")


def main(selected: list[str]) -> None:
    if selected == ["--page"]:
        write_page(json.loads(OUT.read_text()))
        return
    stems = selected or sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.update(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, shared with other work while measured",
        reading_wpm=READING_WPM,
        exercise_min_each=EXERCISE_MIN,
    )
    lessons = results.setdefault("lessons", {})
    for stem in stems:
        print(f"{stem} ...", flush=True)
        lessons[stem] = measure(stem) | {"measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        results["lessons"] = dict(sorted(lessons.items()))
        OUT.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")  # after each lesson: a partial run
        print(f"  {json.dumps(lessons[stem], ensure_ascii=False)}", flush=True)
    if PAGE.is_file():
        write_page(results)


if __name__ == "__main__":
    main(sys.argv[1:])
