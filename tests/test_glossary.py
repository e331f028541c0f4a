"""Every link from a lesson into the glossary lands on a term, and lesson 00 links it."""

import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def anchor(heading: str) -> str:
    """The anchor JupyterLab and GitHub give a markdown heading: lower case, spaces to hyphens, no punctuation."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_glossary_link_lands_on_a_term():
    terms = {anchor(h) for h in re.findall(r"^#{2,3} (.+)$", (NOTEBOOKS / "glossary.md").read_text(), re.M)}
    links = {
        (notebook.name, target)
        for notebook in NOTEBOOKS.glob("*.ipynb")
        for target in re.findall(r"glossary\.md#([\w-]+)", notebook.read_text())
    }
    assert any(name == "00_tour.ipynb" for name, _ in links)
    missing = sorted((name, target) for name, target in links if target not in terms)
    assert not missing, f"links to no glossary term: {missing}"


def test_the_glossary_leads_back_to_every_lesson():
    linked = set(re.findall(r"\]\((\d\d_\w+\.ipynb)\)", (NOTEBOOKS / "glossary.md").read_text()))
    assert linked == {notebook.name for notebook in NOTEBOOKS.glob("*.ipynb")}
