"""The instructor guide (docs/teaching.md) and the lessons' slides (site/slides.py), without running a notebook.

The slides of lesson 03 are made from the notebook as stored: one top-level ``<section>`` per ``#``/``##`` heading,
in order, a sub-slide per exercise, no widget left for a kernel to draw. The guide's table of minutes is the one
``benchmarks/lesson_minutes.py`` writes from ``benchmarks/lesson_minutes.json``, so numbers cannot drift from what
was measured; it covers every lesson, and the guide has a section per lesson and a link to each lesson's slides.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
GUIDE = REPO / "docs" / "teaching.md"
MINUTES = REPO / "benchmarks" / "lesson_minutes.json"
LESSONS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


slides = load("slides", REPO / "site" / "slides.py")
lesson_minutes = load("lesson_minutes", REPO / "benchmarks" / "lesson_minutes.py")


class Sections(HTMLParser):
    """The slide deck's structure: for each top-level ``<section>`` under ``div.slides``, its sub-sections and the
    text of its first h1/h2 heading."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.in_slides, self.slides = 0, False, []
        self.heading: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "div" and ("class", "slides") in attrs:
            self.in_slides = True
        elif tag == "section" and self.in_slides:
            self.depth += 1
            if self.depth == 1:
                self.slides.append({"subslides": 0, "heading": ""})
            elif self.depth == 2:
                self.slides[-1]["subslides"] += 1
        elif tag in ("h1", "h2") and self.slides and not self.slides[-1]["heading"]:
            self.heading = ""

    def handle_endtag(self, tag):
        if tag == "section" and self.in_slides:
            self.depth -= 1
        elif tag in ("h1", "h2") and self.heading is not None:
            self.slides[-1]["heading"] = self.heading.replace("¶", "").strip()
            self.heading = None

    def handle_data(self, data):
        if self.heading is not None:
            self.heading += data


def test_slides_have_one_section_per_heading(tmp_path):
    source = NOTEBOOKS / "03_loss.ipynb"
    notebook = nbformat.read(source, as_version=4)
    headings = [
        c.source.split("\n")[0].lstrip("#").strip()
        for c in notebook.cells
        if c.cell_type == "markdown" and re.match(r"#{1,2} ", c.source)
    ]
    exercises = sum(
        1 for c in notebook.cells if c.cell_type == "markdown" and re.match(r"\*\*\d+\.\*\*", c.source.lstrip())
    )
    path = slides.write_slides(notebook, tmp_path / "03_loss.slides.html")
    page = path.read_text(encoding="utf-8")
    parser = Sections()
    parser.feed(page)
    assert [s["heading"] for s in parser.slides] == headings  # a slide per # or ## heading, in the lesson's order
    (exercise_slide,) = [s for s in parser.slides if s["heading"] == "Exercises"]
    assert exercise_slide["subslides"] == 1 + exercises  # the introduction, then one sub-slide per exercise
    assert "Reveal.initialize" in page and "var scroll = true" in page  # each slide scrolls: sections are long
    assert "equal_logits" in page  # the notebook's own code cells, the exercises included


def test_a_dashboard_becomes_its_last_figure():
    png = "iVBORw0KGgo="  # any base64 text: only its place in the output is checked
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_title", "IPY_MODEL_image"]}},
        "title": {"model_name": "HTMLModel", "state": {"value": "<b>Train an MLP</b>"}},
        "image": {"model_name": "ImageModel", "state": {}, "buffers": [{"data": png, "path": ["value"]}]},
    }
    cell = nbformat.v4.new_code_cell(
        "lab",
        outputs=[
            nbformat.v4.new_output(
                "display_data", data={slides.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox(children=...)"}
            )
        ],
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A lesson"), cell])
    notebook.metadata["widgets"] = {slides.WIDGET_STATE: {"state": state}}
    shown = slides.for_slides(notebook)
    (output,) = shown.cells[1].outputs
    assert list(output["data"]) == ["text/html"]
    assert "live in JupyterLab" in output["data"]["text/html"] and "<b>Train an MLP</b>" in output["data"]["text/html"]
    assert f"data:image/png;base64,{png}" in output["data"]["text/html"]
    assert "widgets" not in shown.metadata and slides.WIDGET_VIEW in cell.outputs[0]["data"]  # the original is kept


def test_guide_minutes_are_the_measured_ones():
    results = json.loads(MINUTES.read_text(encoding="utf-8"))
    assert sorted(results["lessons"]) == LESSONS, "benchmarks/lesson_minutes.json lacks a lesson: measure it"
    for stem, row in results["lessons"].items():
        assert row["run_all_s"] > 0 and row["words"] > 0 and "load_before" in row, stem
        assert row["reading_min"] == round(row["words"] / results["reading_wpm"], 1), stem
    guide = GUIDE.read_text(encoding="utf-8")
    table = re.search(r"^<!-- minutes[^\n]*\n(.*?)^<!-- end minutes -->", guide, flags=re.DOTALL | re.MULTILINE)
    assert table, "docs/teaching.md lost its <!-- minutes --> table"
    assert table[1].strip() == lesson_minutes.minutes_table(results).strip(), (
        "docs/teaching.md's minutes differ from benchmarks/lesson_minutes.json: "
        "run python benchmarks/lesson_minutes.py --page"
    )


def test_guide_covers_every_lesson_and_links_its_slides():
    guide = GUIDE.read_text(encoding="utf-8")
    for stem in LESSONS:
        number = stem[:2]
        assert re.search(rf"^### {number} · ", guide, flags=re.MULTILINE), f"the guide has no section for {stem}"
        assert f'href="../slides/{stem}.slides.html"' in guide, f"the guide does not link {stem}'s slides"
    syllabus = re.search(r"^## A ten-week syllabus\n(.*?)^## ", guide, flags=re.DOTALL | re.MULTILINE)
    assert syllabus and len(re.findall(r"^\| \d+ \|", syllabus[1], flags=re.MULTILINE)) == 10
    taught = set(re.findall(r"^\| \d+ \| ([\d, ]+) \|", syllabus[1], flags=re.MULTILINE))
    assert sorted(n for row in taught for n in row.split(", ")) == [s[:2] for s in LESSONS]


@pytest.mark.parametrize("text,words", [("A *bold* [link](x.md) `code`", 4), ("$x^2$ and\n```\ncode\n```\nend", 2)])
def test_words_count_prose_only(text, words):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    assert lesson_minutes.words(notebook) == words
