"""The course site (``make site``, configured in ``site/conf.py``), built for two lessons and read in Chromium.

Sphinx with myst-nb builds lessons 00 and 08 and the glossary into a temporary folder, running both notebooks
with the mlkit kernel. Playwright then opens the pages from disk in Debian's Chromium, as a reader would: every
figure is a PNG of more than one colour, no cell shows an error, every dashboard is its last figure with a note
that it is live in JupyterLab, and the links from the front page to a lesson, from a lesson to a glossary term
and to the worked solutions lead where they say, and the API reference shows ``mlkit.fit`` and
``Predictor`` with their signatures and docstrings. Screenshots go to ``test-artifacts/browser/site-*.png``.

Needs the ``site`` extra (Sphinx, myst-nb, sphinx-book-theme) and what ``tests/test_browser.py`` needs; without
them it is skipped, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import test_browser
from PIL import Image
from test_browser import REPO, Shots, expect, new_page

browser = test_browser.browser  # the Chromium fixture: skipped locally without Chromium, a failure under CI

LESSONS = ("00_tour", "08_inference")
BUILD_TIMEOUT = int(os.environ.get("MLKIT_SITE_BUILD_TIMEOUT", 900))  # a hang guard: the build takes ~30 s here


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site's HTML folder, built for ``LESSONS``."""
    if missing := [name for name in ("sphinx", "myst_nb", "sphinx_book_theme") if not importlib.util.find_spec(name)]:
        message = f"The site test needs {', '.join(missing)}: .venv/bin/pip install -e '.[site]'."
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message + " Under CI the site test must run, not skip.", pytrace=False)
        pytest.skip(message)
    html = tmp_path_factory.mktemp("site") / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-c", "site", ".", str(html)]
    env = dict(os.environ, MLKIT_SITE_NOTEBOOKS=" ".join(LESSONS))
    built = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert built.returncode == 0, f"sphinx-build failed:\n{built.stdout[-3000:]}\n{built.stderr[-6000:]}"
    return html


@pytest.fixture
def page(browser, site):
    with new_page(browser) as page:
        yield page


def colours(path: Path) -> int:
    """How many different colours the image at ``path`` has (up to 2: all a check needs)."""
    pixels = np.asarray(Image.open(path).convert("RGBA")).reshape(-1, 4)
    return 1 if (pixels == pixels[0]).all() else 2


# The figures on a page (each must have loaded), and the cells that show an error: a traceback or an error on
# stderr, except in a cell the lesson makes fail on purpose (tagged raises-exception), or a widget left as text.
FIGURES = """() => [...document.querySelectorAll('article img')].map(img => ({
    src: img.src, loaded: img.complete && img.naturalWidth > 0, note: img.closest('.cell')
        ?.querySelector('.admonition.note')?.textContent ?? null}))"""
PROBLEMS = """() => [...document.querySelectorAll('article .cell')].flatMap((cell, i) => {
    const problems = [];
    cell.querySelectorAll('.cell_output .output').forEach(o => {
        const text = o.textContent, onPurpose = cell.classList.contains('tag_raises-exception');
        if (!onPurpose && (o.classList.contains('traceback') || (o.classList.contains('stderr') && /Error/.test(text))))
            problems.push(`cell ${i + 1} shows an error: ${text.slice(0, 600)}`);
        if (/Loading widget|model_id|children=\\(/.test(text))
            problems.push(`cell ${i + 1} shows a widget as text, not as its figure: ${text.slice(0, 200)}`);
    });
    return problems;
})"""


def check_lesson(page, lesson: str) -> int:
    """Every figure of the open lesson page loaded and is not blank, no cell shows an error; returns the number
    of dashboards (a widget shown as its last figure, under the note)."""
    figures = page.evaluate(FIGURES)
    assert figures, f"{lesson} shows no figure"
    for figure in figures:
        assert figure["loaded"], f"{lesson}: the figure {figure['src']} did not load"
        path = Path(unquote(urlparse(figure["src"]).path))
        assert colours(path) > 1, f"{lesson}: the figure {path.name} is blank (one colour)"
    problems = page.evaluate(PROBLEMS)
    assert not problems, f"{lesson} on the site:\n" + "\n".join(problems)
    return sum(1 for figure in figures if figure["note"] and "live in JupyterLab" in figure["note"])


def test_site_pages_figures_and_links(page, site):
    shots = Shots(page, "site")
    with shots.step("front-page"):
        page.goto((site / "index.html").as_uri())  # the top of the site leads to the front page
        expect(page).to_have_url((site / "site" / "index.html").as_uri())
        expect(page.get_by_role("heading", name="mlkit", level=1)).to_be_visible()
        expect(page.locator("article table")).to_contain_text("what you do")
    with shots.step("lesson-00"):
        page.locator("article table a", has_text="00_tour").click()
        expect(page).to_have_title("00 · A tour: training versus inference — mlkit: training versus inference")
        assert check_lesson(page, "00_tour") >= 1, "lesson 00's dashboard is not shown as its last figure"
        dashboard = page.locator(".cell", has=page.locator(".admonition.note", has_text="live in JupyterLab")).first
        dashboard.scroll_into_view_if_needed()
        expect(dashboard).to_contain_text("Train an MLP on the digits")  # its title and last status line
        expect(dashboard).to_contain_text("epoch ")
    with shots.step("glossary-term"):
        page.locator("article a[href*='glossary.html#learning-rate']").first.click()
        expect(page).to_have_title("Glossary — mlkit: training versus inference")
        expect(page.locator("#learning-rate")).to_be_in_viewport()
    with shots.step("lesson-08"):
        page.locator("article a[href$='08_inference.html']").first.click()
        expect(page).to_have_title("08 · Inference: freeze, process, deploy — mlkit: training versus inference")
        check_lesson(page, "08_inference")
    with shots.step("solutions"):
        solution = page.locator("article a.download[href$='08_inference.py']")
        assert (Path(unquote(urlparse(solution.get_attribute("href", timeout=5000) or "").path)).name) == (
            "08_inference.py"
        )
        page.goto((site / "site" / "index.html").as_uri())
        page.locator("article a", has_text="notebooks/solutions/").click()
        expect(page).to_have_title("Worked solutions — mlkit: training versus inference")
        expect(page.locator("article")).to_contain_text("check.steps_in_training")  # 00's worked solution
    with shots.step("api-reference"):  # generated from the docstrings by autodoc (site/reference.py)
        page.goto((site / "docs" / "api" / "index.html").as_uri())
        page.locator("article a", has_text="mlkit").first.click()
        expect(page).to_have_title("mlkit — mlkit: training versus inference")
        fit = page.locator("dl.py.function", has=page.locator("dt[id='mlkit.fit']"))
        expect(fit.locator("dt")).to_contain_text("mlkit.fit(model")  # the signature
        expect(fit.locator("dd").first).to_contain_text("Train model in place")  # the docstring
        predictor = page.locator("dt[id='mlkit.Predictor']")
        predictor.scroll_into_view_if_needed()
        expect(predictor).to_contain_text("class mlkit.Predictor(")
        page.locator("article table a", has_text="fit").first.click()  # the autosummary row leads to the entry
        expect(page.locator("dt[id='mlkit.fit']")).to_be_in_viewport()
    with shots.step("instructor-guide"):  # docs/teaching.md, listed first under "Guides and reference"
        page.goto((site / "site" / "index.html").as_uri())
        page.locator("nav a", has_text="Teaching with mlkit").first.click()
        expect(page).to_have_title("Teaching with mlkit: the instructor guide — mlkit: training versus inference")
        minutes = page.locator("article table", has_text="Run All s")
        expect(minutes.locator("tbody tr")).to_have_count(
            len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))) + 1
        )
        expect(page.locator("article h3", has_text="13 · Serving under load")).to_have_count(1)
    with shots.step("slides"):  # the lesson's reveal.js slides, made by the build from the notebook as it ran
        minutes.locator("tr", has_text="00_tour").locator("a", has_text="slides").click()
        expect(page).to_have_url((site / "slides" / "00_tour.slides.html").as_uri())
        sections = page.locator("div.slides > section")
        assert sections.count() >= 6, f"00_tour's slides have {sections.count()} slides, one per heading expected"
        expect(sections.first).to_contain_text("A tour: training versus inference")
        expect(page.locator("div.slides img[src^='data:image/png']").first).to_be_attached()  # its figures
