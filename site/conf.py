"""Sphinx configuration of the course site: ``make site``, or ``sphinx-build -c site . site/_build/html``.

The sources are the repository itself (``-c site .``), so the lessons and the glossary keep their paths and their
links between each other work as they do in JupyterLab; the front page (``site/index.md``) is the README's
introduction and lesson table. myst-nb runs every lesson once with the kernel its metadata names ("mlkit", which
``make env`` registers), and a failing cell fails the build. A dashboard cannot move without a kernel, so its page
shows the dashboard's last figure and says that it is live in JupyterLab.
``MLKIT_SITE_NOTEBOOKS="00_tour 08_inference"`` runs only those lessons (``tests/test_site.py`` does).
Each lesson also gets reveal.js slides, ``slides/NN_name.slides.html`` in the built site (``site/slides.py``), which
the instructor guide (``docs/teaching.md``) links to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.application import Sphinx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # site/reference.py: the generated parts of the reference pages
import slides  # site/slides.py: each lesson's reveal.js slides, from the notebook

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
NOTEBOOKS = REPO / "notebooks"

project = "mlkit"
author = "the mlkit authors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary"]
root_doc = "site/index"
include_patterns = [
    "site/index.md",
    "site/solutions.md",
    "notebooks/[0-9]*.ipynb",
    "notebooks/glossary.md",
    "docs/*.md",  # the guides the README points to, and the design notes
    "docs/api/*.md",  # the API reference, filled in from the docstrings (site/reference.py)
    "benchmarks/README.md",
    "datasets/README.md",  # the data card
]
exclude_patterns = [".*", "**/.*", "site/_build"]  # .venv, .git, checkpoints and this build are not walked
templates_path = ["_templates"]
html_additional_pages = {"index": "redirect.html"}  # the top of the site leads to the front page
html_theme = "sphinx_book_theme"
html_title = "mlkit: training versus inference"
html_theme_options = {"show_toc_level": 2}

myst_heading_anchors = 3  # the glossary's "### term" headings get the anchors the lessons link to
suppress_warnings = ["myst.header"]  # the glossary puts its terms (###) straight under its title (#)
nb_execution_mode = "force"  # every lesson runs once per build: the site shows what the code does today
nb_execution_timeout = 600  # a lesson takes under a minute on 2 cores; this is a hang guard
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_ipywidgets_js: dict = {}  # no widget JavaScript from a CDN: dashboards become their last figure (below)

# The API reference (docs/api/): autodoc imports mlkit (CPU is enough, nothing is compiled) and reads the
# docstrings; autosummary draws the tables, whose rows link to the entries below them, so no stub files are written.
autosummary_generate = False
autodoc_member_order = "bysource"

if selected := os.environ.get("MLKIT_SITE_NOTEBOOKS", "").split():
    if missing := [name for name in selected if not (NOTEBOOKS / f"{name}.ipynb").is_file()]:
        raise ValueError(f"MLKIT_SITE_NOTEBOOKS names {missing}, which are not in notebooks/; use names like 00_tour")
    # The others are pages without outputs, so every link between pages is still there to check.
    nb_execution_excludepatterns = [
        f"notebooks/{p.name}" for p in NOTEBOOKS.glob("[0-9]*.ipynb") if p.stem not in selected
    ]

WIDGET_VIEW = '<script type="application/vnd.jupyter.widget-view+json">'


def front_page(readme: str, lessons: set[str]) -> str:
    """The README's introduction and its "The lessons" section, each lesson in ``lessons`` linked to its page.

    The README's links are relative to the repository, which is the site's source folder: they become absolute
    ("/notebooks/glossary.md"), which MyST reads from the source folder. The folder of worked solutions becomes
    the page that shows them."""
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1]  # below the "# mlkit" title
    section = re.search(r"^## The lessons\n.*?(?=^## |\Z)", readme, flags=re.MULTILINE | re.DOTALL)
    if section is None:
        raise ValueError(f"{README} has no '## The lessons' section, which the site's front page is made of")
    link = lambda m: f"| [{m[1]}](notebooks/{m[1]}.ipynb) |" if m[1] in lessons else m[0]
    text = intro + "\n" + re.sub(r"^\| `(\w+)` \|", link, section[0], flags=re.MULTILINE)
    text = text.replace("](notebooks/solutions/)", "](site/solutions.md)")
    return re.sub(r"\]\((?![a-z]+:|#|/)", "](/", text)


def solutions_page() -> str:
    """A section per worked solution in ``notebooks/solutions/``, showing the script."""
    return "\n".join(
        f"## {path.stem}\n\n```{{literalinclude}} /notebooks/solutions/{path.name}\n:language: python\n```\n"
        for path in sorted((NOTEBOOKS / "solutions").glob("*.py"))
    )


def fill_in(app: Sphinx, docname: str, source: list[str]) -> None:
    """Replace the marked comment line of the front page, the solutions page and the reference pages (the API, the
    command line: ``site/reference.py``) with what it names.
    (A lesson's cell that fails on purpose carries the "raises-exception" tag, which nbclient reads too.)"""
    if docname == "site/index":
        lessons = {name.removeprefix("notebooks/") for name in app.env.found_docs if name.startswith("notebooks/")}
        mark, text = "<!-- README", front_page(README.read_text(encoding="utf-8"), lessons)
    elif docname == "site/solutions":
        mark, text = "<!-- SOLUTIONS", solutions_page()
    elif docname.startswith("docs/api/") and (found := re.search(r"^<!-- API ([\w.]+)", source[0], re.MULTILINE)):
        mark, text = "<!-- API", reference.api_pages()[found[1]]
    elif docname == "docs/command-line":
        mark, text = "<!-- CLI", reference.command_line()
    else:
        return
    source[0] = "\n".join(text if line.startswith(mark) else line for line in source[0].split("\n"))


def list_teaching_guide(app: Sphinx, docname: str, source: list[str]) -> None:
    """Put the instructor guide (``docs/teaching.md``) first under "Guides and reference" in the front page's
    navigation."""
    if docname == "site/index":
        caption = ":caption: Guides and reference\n\n"
        if caption not in source[0]:
            raise ValueError(f"site/index.md has no toctree with {caption.strip()!r} to list docs/teaching in")
        if "/docs/teaching\n" not in source[0]:
            source[0] = source[0].replace(caption, caption + "/docs/teaching\n", 1)


def build_slides(app: Sphinx, exception: Exception | None) -> None:
    """Write each lesson's slides into ``slides/`` of the built site, from the notebook as myst-nb ran it."""
    if exception is not None or app.builder.format != "html":
        return
    lessons = sorted(
        NOTEBOOKS / f"{name.removeprefix('notebooks/')}.ipynb"
        for name in app.env.found_docs
        if name.startswith("notebooks/") and (REPO / f"{name}.ipynb").is_file()
    )
    executed = Path(app.env.mystnb_config.output_folder)  # type: ignore[attr-defined]  # myst-nb sets it
    slides.build_all(lessons, executed, Path(app.outdir) / "slides")


def unlink_folders(app: Sphinx, docname: str, source: list[str]) -> None:
    """A Markdown page's link to a folder of the repository (``[`mlkit/data/sets/`](../mlkit/data/sets/)``) becomes
    its text: on GitHub it opens the folder, but the site has no page for a folder."""
    if not docname.startswith("notebooks/"):
        source[0] = re.sub(r"\[([^\]]+)\]\((?![a-z]+:)[^)\s]*/\)", r"\1", source[0])


def widget_tree(state: dict, model_id: str) -> Iterator[dict]:
    """The models of one widget and all it contains, depth first."""
    model = state[model_id]
    yield model
    for child in model["state"].get("children", []):
        yield from widget_tree(state, child.removeprefix("IPY_MODEL_"))


def static_dashboard(app: Sphinx, state: dict, model_id: str) -> list[nodes.Node]:
    """A widget as a page can show it without a kernel: a note, then its HTML texts (title, status) and images."""
    note = nodes.paragraph(
        "",
        "",
        nodes.Text("This dashboard is live in JupyterLab ("),
        nodes.literal(text="make lab"),
        nodes.Text("), where moving its controls runs it again. Here is its last figure and status, from the build."),
    )
    shown: list[nodes.Node] = [nodes.note("", note)]
    for model in widget_tree(state, model_id):
        if model["model_name"] == "HTMLModel" and model["state"].get("value"):
            shown.append(nodes.raw("", model["state"]["value"], format="html"))
        for buffer in model.get("buffers", []) if model["model_name"] == "ImageModel" else []:
            png = base64.b64decode(buffer["data"])
            if png:  # written where myst-nb writes the notebooks' other figures, named by content as it does
                folder = app.env.mystnb_config.output_folder  # type: ignore[attr-defined]  # myst-nb sets it
                path = Path(folder) / f"{hashlib.sha256(png).hexdigest()}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)
                shown.append(nodes.image(uri="/" + os.path.relpath(path, app.srcdir), alt="the dashboard's figure"))
    return shown


def freeze_dashboards(app: Sphinx, doctree: nodes.document) -> None:
    """Replace each widget output with :func:`static_dashboard`, and leave the widget state out of the page."""
    js_files = NbMetadataCollector.get_js_files(app.env, app.env.docname)
    if "ipywidgets_state" not in js_files:
        return
    state = json.loads(js_files.pop("ipywidgets_state")[1]["body"])["state"]
    for raw in list(doctree.findall(nodes.raw)):
        if raw.astext().startswith(WIDGET_VIEW):
            view = json.loads(raw.astext().removeprefix(WIDGET_VIEW).removesuffix("</script>"))
            raw.replace_self(static_dashboard(app, state, view["model_id"]))


def setup(app: Sphinx) -> None:
    app.connect("source-read", fill_in)
    app.connect("source-read", unlink_folders)
    app.connect("source-read", list_teaching_guide)
    app.connect("build-finished", build_slides)
    app.connect("autodoc-process-signature", reference.borrowed_signature)
    app.connect("doctree-read", freeze_dashboards, priority=400)  # before Sphinx collects the images (500)
