"""Slides of each lesson, made from the notebook itself by nbconvert's reveal.js exporter (``SlidesExporter``).

The notebooks carry no slide tags; the slide boundaries are derived here, in a copy: a markdown cell that opens
with a ``#`` or ``##`` heading starts a slide, one with a ``###`` heading or an exercise ("**1.**") starts a
sub-slide (below it, in reveal.js), and every other cell continues the slide it is in. Each slide scrolls, since a
lesson's section is longer than a screen. A dashboard, which cannot move without a kernel, becomes its last
figure and status lines, as on the lesson's page (``site/conf.py``).

``make site`` writes ``slides/NN_name.slides.html`` into the built site, from the notebooks myst-nb has just run
(so the slides show today's outputs); a lesson the build did not run gets slides without outputs.
reveal.js and MathJax are loaded from their CDN when the slides are opened, as nbconvert does by default; the build
itself needs no network. By hand: ``python site/slides.py notebooks/03_loss.ipynb out/`` (no execution).
"""

from __future__ import annotations

import copy
import html
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def slide_type(cell: nbformat.NotebookNode) -> str:
    """Where a cell goes: "slide" (a new one), "subslide" (a new one below) or "-" (on the current one)."""
    if cell.cell_type != "markdown":
        return "-"
    text = cell.source.lstrip()
    if re.match(r"#{1,2} ", text):
        return "slide"
    if re.match(r"### |\*\*\d+\.\*\*", text):
        return "subslide"
    return "-"


def widget_tree(state: dict, model_id: str) -> Iterator[dict]:
    """The models of one widget and all it contains, depth first (missing ones skipped)."""
    model = state.get(model_id)
    if model is None:
        return
    yield model
    for child in model["state"].get("children", []):
        yield from widget_tree(state, child.removeprefix("IPY_MODEL_"))


def static_dashboard(state: dict, model_id: str) -> str:
    """A dashboard as HTML without a kernel: a note, its HTML texts (title, status) and its images."""
    parts = ["<p><em>This dashboard is live in JupyterLab (<code>make lab</code>); here is its last figure.</em></p>"]
    for model in widget_tree(state, model_id):
        if model["model_name"] == "HTMLModel" and model["state"].get("value"):
            parts.append(model["state"]["value"])
        if model["model_name"] == "ImageModel":
            parts += [f'<img src="data:image/png;base64,{b["data"]}">' for b in model.get("buffers", []) if b["data"]]
    return "\n".join(parts)


def for_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook with slide boundaries set and each dashboard replaced by its last figure."""
    notebook = copy.deepcopy(notebook)
    state = notebook.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        cell.metadata["slideshow"] = {"slide_type": slide_type(cell)}
        for output in cell.get("outputs", []):
            view = output.get("data", {}).pop(WIDGET_VIEW, None)
            if view is not None:
                output["data"] = {"text/html": static_dashboard(state, view["model_id"])}
    return notebook


def write_slides(notebook: nbformat.NotebookNode, path: Path) -> Path:
    """Write the notebook's reveal.js slides (one ``<section>`` per slide) to ``path``."""
    from nbconvert import SlidesExporter  # imported here: conf.py loads this module before Sphinx needs it

    exporter = SlidesExporter(reveal_scroll=True, reveal_number="c/t", exclude_input_prompt=True)
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(for_slides(notebook), resources={"metadata": {"name": path.stem}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def title(notebook: nbformat.NotebookNode) -> str:
    """The lesson's title, its first heading."""
    first = next(c for c in notebook.cells if c.cell_type == "markdown").source.split("\n")[0]
    return html.unescape(first.lstrip("# ").strip())


def build_all(notebooks: list[Path], executed: Path, out: Path) -> list[Path]:
    """Slides for each notebook, from its executed copy in ``executed`` (myst-nb's output folder) where there is
    one with outputs, else from the notebook as it is."""
    written = []
    for source in notebooks:
        ran = executed / "notebooks" / source.name
        notebook = nbformat.read(ran if ran.is_file() else source, as_version=4)
        written.append(write_slides(notebook, out / f"{source.stem}.slides.html"))
    return written


if __name__ == "__main__":
    source, folder = Path(sys.argv[1]), Path(sys.argv[2])
    print(write_slides(nbformat.read(source, as_version=4), folder / f"{source.stem}.slides.html"))
