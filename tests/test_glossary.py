"""Every link from a lesson into the glossary lands on a term, and lesson 00 links it."""

import json
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


def headings() -> list[str]:
    return re.findall(r"^### (.+)$", (NOTEBOOKS / "glossary.md").read_text(), re.M)


def test_the_glossary_is_in_alphabetical_order():
    key = [re.sub(r"[^a-z0-9 ]", "", h.lower()) for h in headings()]
    assert key == sorted(key), [h for h, k, s in zip(headings(), key, sorted(key), strict=True) if k != s][:3]


def _names() -> set[str]:
    """Every name the glossary defines: each part of a heading, and each word it sets in bold."""
    text = (NOTEBOOKS / "glossary.md").read_text()
    parts = [p for h in headings() for p in re.split(r",\s*|\s+and\s+|[()]", h)]
    return {_norm(p) for p in parts + re.findall(r"\*\*([^*]+)\*\*", text) if p.strip()}


def _norm(term: str) -> str:
    term = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", term).strip().lower().replace("-", " ").replace("`", "")
    return re.sub(r"(ies|es|s)$", "", term)


REQUIRED = ("ONNX", "bucket", "dispatch", "open loop", "503", "Retry-After", "pooling", "vmap", "lax.scan")
REQUIRED += ("embedding bag",)
# Bold that emphasises rather than introduces a term: not looked for in the glossary.
EMPHASIS = {
    "more data", "valley", "zig-zag", "smooth", "shared", "local", "compute", "training images", "training split only",
    "twice the number of weights", "three forward passes", "untrained", "matrix products", "flops per device", "mean",
    "question", "shoots up", "a stand-in for a bigger model", "accuracy on the answered ones",
    "parameters and accuracy", "embedding size", "compiled",
}  # fmt: skip


def test_the_listed_terms_have_entries():
    names = _names()
    assert [t for t in REQUIRED if _norm(t) not in names] == []


def test_every_term_a_lesson_sets_in_bold_has_an_entry():
    """A lesson introduces a term in bold; short lower-case bold spans are terms, and each has a glossary entry
    (a heading part or a bold word of an entry; plurals and other endings of a name count)."""
    names = _names()
    missing = set()
    for notebook in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for span in re.findall(r"\*\*([^*]+)\*\*", "".join(cell["source"])):
                term = _norm(span)
                plain = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", span).strip()
                if not (plain[:1].islower() or plain[:1].isdigit()) or "`" in span or plain.endswith("."):
                    continue  # a sentence, a heading-like lead-in, a button's name or code: emphasis
                if len(term.split()) > 3 or term in {_norm(e) for e in EMPHASIS}:
                    continue
                if term not in names and not any(term.startswith(n) or n.startswith(term) for n in names if len(n) > 3):
                    missing.add((notebook.name[:2], span))
    assert not missing, sorted(missing)
