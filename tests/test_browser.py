"""The lessons in real JupyterLab, in a real (headless) Chromium, as a learner sees them.

Starts JupyterLab from this environment on 127.0.0.1 with a one-time token, on a
temporary copy of the notebooks (outputs never reach the repository) and with
the settings in ``tests/browser/`` (no news, no update check, every cell kept
in the page). Playwright drives Debian's Chromium: Run All, move sliders with
the keyboard (several presses during a run must land on the slider, never on the
notebook), press Train and Stop, and wait on the dashboard's status line. Every
step leaves a screenshot in ``test-artifacts/browser/``.

Needs the ``playwright`` package (the ``test`` extra) and Chromium
(``apt-get install -y chromium``; ``make test`` installs it when run as root).
Without them the test is skipped, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import psutil
import pytest

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the `browser` fixture: skipped locally, a failure under CI
    sync_playwright = None

REPO = Path(__file__).resolve().parent.parent
SETTINGS = Path(__file__).resolve().parent / "browser"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("MLKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"  # or Chrome
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
]
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1, never a proxy
SCREEN = {"width": 1366, "height": 768}  # a common laptop screen
# Hang guards, not speed limits: about ten times what a run takes on a 2-core machine. Waits end as
# soon as the page is ready; raise these on a very slow machine with the environment variables.
RUN_ALL_TIMEOUT = int(os.environ.get("MLKIT_BROWSER_RUN_ALL_TIMEOUT", 600))  # one notebook's Run All
TRAIN_TIMEOUT = int(os.environ.get("MLKIT_BROWSER_TRAIN_TIMEOUT", 300))  # one dashboard run
EPOCH = re.compile(r"^epoch (\d+)/(\d+) · ")


def _missing() -> list[str]:
    missing = []
    if sync_playwright is None:
        missing.append("the playwright package (install the test tools: .venv/bin/pip install -e '.[test]')")
    if not os.path.exists(CHROMIUM):
        missing.append(
            "Chromium (as root: apt-get update && apt-get install -y chromium; `make test` installs "
            "it when it runs as root; or set MLKIT_CHROMIUM to a Chromium or Chrome program)"
        )
    return missing


@pytest.fixture(scope="module")
def browser():
    if missing := _missing():
        message = "The browser test needs " + " and ".join(missing) + "."
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message + " Under CI the browser test must run, not skip.", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Lab:
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of the notebooks."""

    def __init__(self, root: Path):
        self.root, self.notebooks = root, root / "notebooks"
        shutil.copytree(REPO / "notebooks", self.notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        shutil.copytree(SETTINGS / "user-settings", root / "settings")
        (root / "config").mkdir()
        shutil.copy(SETTINGS / "jupyter_server_config.json", root / "config")
        self.token = secrets.token_hex(16)
        self.env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(root / "config"),
            JUPYTER_DATA_DIR=str(root / "data"),
            JUPYTER_RUNTIME_DIR=str(root / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
        )
        self.process = None
        self.log = root / "jupyterlab.log"

    def start(self, timeout: float = 60) -> None:
        for _ in range(3):  # a free port can be taken between finding and binding it: try another
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            command = [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.notebooks}",
            ]
            if os.geteuid() == 0:
                command.append("--allow-root")
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(OSError):
                    self.api("GET", "/api/status")
                    return
                time.sleep(0.3)
            if self.process.poll() is None:
                break
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"JupyterLab did not start within {timeout} s; its log ends:\n{tail}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def api(self, method: str, path: str, timeout: float = 5):
        request = urllib.request.Request(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with LOCAL.open(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)

    def stop(self) -> None:
        """Ask the server to shut down (it stops its kernels); kill whatever is left after 20 s."""
        if self.process is None:
            return
        family = []
        with contextlib.suppress(psutil.Error):
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        with contextlib.suppress(OSError):
            self.api("POST", "/api/shutdown")
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for process in family:  # kernels run in sessions of their own; none may outlive the test
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def new_page(browser):
    """A page in a fresh browser context at the test's screen size, closed afterwards."""
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser, lab):
    with new_page(browser) as page:
        yield page
    with contextlib.suppress(OSError):
        lab.shut_down_kernels()  # frees the two cores for the next notebook


class Shots:
    """Screenshots of each step in test-artifacts/browser/, and one of the failure if a step fails."""

    def __init__(self, page, prefix: str):
        self.page, self.prefix, self.count = page, prefix, 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{prefix}-*.png"):
            old.unlink()

    @contextlib.contextmanager
    def step(self, name: str):
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{name}.png"
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # a dead browser must not hide the real failure
                self.page.screenshot(path=path.with_name(path.stem + "-FAILED.png"))
            raise
        self.page.screenshot(path=path)


# What the page shows, read in the browser.
RUN_FINISHED = """() => {
    const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
        .map(p => p.textContent.trim());
    const idle = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator')
        ?.dataset.status === 'idle';
    const failed = [...document.querySelectorAll('.jp-OutputArea-output')].some(o => /Traceback/.test(o.textContent));
    return idle && !prompts.includes('[*]:') && (failed || prompts.every(p => /^\\[\\d+\\]:$/.test(p)));
}"""
PROBLEMS = """() => {
    const problems = [];
    document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').forEach((cell, i) => {
        // A cell that only checks starts collapsed: its placeholder shows no prompt, so only its output is read
        // (a failed check shows its traceback there; a Run All that stopped early leaves later prompts empty).
        const prompt = cell.querySelector('.jp-InputArea-prompt')?.textContent.trim() ?? '[collapsed]';
        if (prompt !== '[collapsed]' && !/^\\[\\d+\\]:$/.test(prompt))
            problems.push(`code cell ${i + 1} did not run (prompt ${prompt})`);
        cell.querySelectorAll('.jp-OutputArea-output').forEach(o => {
            const text = o.textContent;
            if (/Traceback|Error displaying widget/.test(text) || (o.dataset.mimeType ===
                'application/vnd.jupyter.stderr' && /Error/.test(text)))
                problems.push(`code cell ${i + 1} shows an error: ${text.slice(0, 600)}`);
            if (/Loading widget|model_id|children=\\(/.test(text))
                problems.push(`code cell ${i + 1} shows a widget as text, not as a widget: ${text.slice(0, 200)}`);
        });
    });
    return problems;
}"""
# Does the dashboard fit the screen? Horizontal scrolling anywhere from the page down to the dashboard,
# labels cut off, controls not beside the figure, a stretched figure.
LAYOUT = """dash => {
    const problems = [];
    const page = document.documentElement;
    if (page.scrollWidth > innerWidth) problems.push(`the page scrolls sideways (${page.scrollWidth} px)`);
    const scrolls = e => e.scrollWidth > e.clientWidth + 1 && /auto|scroll/.test(getComputedStyle(e).overflowX);
    const names = {'jp-WindowedPanel-outer': 'the notebook', 'jp-OutputArea-output': 'the cell output',
                   'widget-hbox': 'the dashboard', 'widget-vbox': 'the controls'};
    const name = e => Object.entries(names).find(([c]) => e === dash ? c === 'widget-hbox' : e.classList.contains(c))
        ?.[1] ?? `<${e.tagName.toLowerCase()} class="${e.className}">`;
    [...Array.from(dash.querySelectorAll('*')), ...(function* () {
        for (let e = dash; e && e !== document.body; e = e.parentElement) yield e; })()].forEach(e => {
        if (scrolls(e)) problems.push(`${name(e)} scrolls sideways: ${e.scrollWidth} px of content in ` +
                                      `${e.clientWidth} px`);
    });
    dash.querySelectorAll('.widget-label, .widget-readout').forEach(e => {
        if (e.offsetParent && e.scrollWidth > e.clientWidth + 1)
            problems.push(`"${e.textContent}" is cut off (${e.scrollWidth} px in ${e.clientWidth} px)`);
    });
    const panel = dash.closest('.jp-OutputArea-output').getBoundingClientRect();
    const side = dash.querySelector('.widget-vbox').getBoundingClientRect();
    dash.querySelectorAll('img').forEach(img => {
        const r = img.getBoundingClientRect();
        if (r.right > Math.min(panel.right, innerWidth) + 1)
            problems.push(`the figure is cut off on the right: it ends at ${Math.round(r.right)} px, ` +
                          `the output at ${Math.round(panel.right)} px`);
        if (r.left < side.right - 1 || r.top > side.bottom) problems.push('the figure is not beside the controls');
        const natural = img.naturalWidth / img.naturalHeight, shown = r.width / r.height;
        if (Math.abs(shown / natural - 1) > 0.03)
            problems.push(`the figure is stretched: ${img.naturalWidth}x${img.naturalHeight} px shown as ` +
                          `${Math.round(r.width)}x${Math.round(r.height)}`);
        if (r.width < 0.85 * img.naturalWidth)  // drawn at 90 dpi: smaller and its 10-point text is unreadable
            problems.push(`the figure is shrunk to ${Math.round(100 * r.width / img.naturalWidth)}% ` +
                          `(${img.naturalWidth} px shown in ${Math.round(r.width)} px): its text is unreadable`);
        if (!img.naturalWidth) { problems.push('the figure shows no image'); return; }
        const canvas = Object.assign(document.createElement('canvas'),
                                     {width: img.naturalWidth, height: img.naturalHeight});
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const px = context.getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = false;  // a valid PNG of one colour: what two redraws at once on one Figure left
        for (let i = 4; i < px.length && !drawn; i += 4)
            drawn = px[i] !== px[0] || px[i + 1] !== px[1] || px[i + 2] !== px[2];
        if (!drawn) problems.push('the figure is blank: every pixel is one colour');
    });
    return problems;
}"""


def run_all(page, lab: Lab, notebook: str, shots: Shots) -> None:
    with shots.step("opened"):
        page.goto(lab.url(notebook))
        expect(page.locator(".jp-NotebookPanel .jp-KernelName")).to_have_text("Python (mlkit)", timeout=60_000)
        expect(page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")).to_have_attribute(
            "data-status", "idle", timeout=60_000
        )
    with shots.step("ran-all"):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_TIMEOUT * 1000, polling=500)
        problems = page.evaluate(PROBLEMS)
        if problems:  # the screenshot shows the first error
            page.locator(".jp-OutputArea-output", has_text="Traceback").first.scroll_into_view_if_needed(timeout=5000)
        assert not problems, f"{notebook} in JupyterLab:\n" + "\n".join(problems)
        assert page.locator(".jp-OutputArea-output .jupyter-widgets").count() > 0, "no widget was rendered"
        assert page.locator(".jp-OutputArea-output .widget-slider").count() > 0, "no slider was rendered"


# A run of a dashboard, as the page shows it: the Stop button lights up ("busy": it gains the class mod-danger)
# and goes plain again ("free"), the status line and the figure change. Several changes during a run make one
# busy..free span. The last figure of a run may come just after "free".
WATCH = """root => {
    const stop = [...root.querySelectorAll('button')].find(b => b.textContent.trim() === 'Stop');
    const status = [...root.querySelectorAll('.widget-html')].pop();
    root.__watch?.disconnect();
    const events = root.__events = [];
    let lit = stop.classList.contains('mod-danger');
    root.__watch = new MutationObserver(records => records.forEach(m => {
        if (m.target === stop && m.attributeName === 'class' && stop.classList.contains('mod-danger') !== lit) {
            lit = !lit;
            events.push([lit ? 'busy' : 'free', performance.now()]);
        } else if (m.target.tagName === 'IMG' && m.attributeName === 'src') events.push(['figure', performance.now()]);
        else if (status.contains(m.target)) events.push(['status', performance.now(), status.innerText]);
    }));
    root.__watch.observe(root, {subtree: true, childList: true, characterData: true, attributes: true,
                                attributeFilter: ['src', 'class']});
}"""
RUN_OVER = """root => {
    const names = root.__events.map(e => e[0]), busy = names.lastIndexOf('busy'), free = names.lastIndexOf('free');
    if (busy < 0 || free < busy) return false;
    return names.indexOf('figure', free) > free || performance.now() - root.__events[free][1] > 2000;
}"""


class Dashboard:
    """One TrainingDashboard on the page, found by its title."""

    def __init__(self, page, title: str):
        self.page = page
        self.root = page.locator(".widget-hbox", has=page.locator(".widget-html-content b", has_text=title))
        self.status = self.root.locator(".widget-html").last  # the title is the first, the status line the last
        self.image = self.root.locator("img.widget-image")
        self.train = self.root.get_by_role("button", name="Train")
        self.stop = self.root.get_by_role("button", name="Stop")

    def show(self) -> None:
        self.root.scroll_into_view_if_needed()
        problems = self.root.evaluate(LAYOUT)
        assert not problems, "the dashboard does not fit a 1366x768 screen:\n" + "\n".join(problems)

    def slider(self, label: str):
        return self.root.locator(
            ".widget-slider", has=self.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$"))
        )

    def press(self, label: str, key: str) -> str:
        """Focus a slider's handle and press a key, as a learner would; returns the new readout."""
        readout = self.slider(label).locator(".widget-readout")
        before = readout.inner_text()
        self.slider(label).locator(".noUi-handle").focus()
        self.page.keyboard.press(key)
        expect(readout).not_to_have_text(before)
        return readout.inner_text()

    def watch(self) -> None:
        """Start recording what the page shows, before the action that starts a run (once the last run is over)."""
        expect(self.stop).not_to_have_class(re.compile(r"\bmod-danger\b"), timeout=TRAIN_TIMEOUT * 1000)
        self.root.evaluate(WATCH)

    def statuses(self) -> list[str]:
        """The texts the status line showed since ``watch``."""
        return [event[2] for event in self.root.evaluate("root => root.__events") if event[0] == "status"]

    def keys(self, label: str, *keys: str, gap_ms: int = 250) -> str:
        """Focus a slider's handle once and press ``keys`` one after another, runs or not; returns the readout.

        Nothing focuses the handle again: if a run took the focus away, the keys would reach the notebook."""
        handle = self.slider(label).locator(".noUi-handle")
        handle.focus()
        for key in keys:
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(gap_ms)
        return self.slider(label).locator(".widget-readout").inner_text()

    def focused(self, label: str) -> bool:
        return self.slider(label).locator(".noUi-handle").evaluate("handle => handle === document.activeElement")

    def run_over(self, epochs: int | None = None) -> str:
        """Wait for the run to end; check that the status line and the figure changed; return the status."""
        self.page.wait_for_function(RUN_OVER, arg=self.root.element_handle(), timeout=TRAIN_TIMEOUT * 1000, polling=100)
        seen = {event[0] for event in self.root.evaluate("root => root.__events")}
        assert {"status", "figure"} <= seen, f"during the run the page showed only {seen}"
        status = self.status.inner_text()
        if epochs is not None:
            assert re.match(f"^epoch {epochs}/{epochs} · ", status), status
        return status


# The notebook as a learner sees it: how many cells are shown, and whether a heading was folded.
NOTEBOOK_VIEW = """() => ({
    shown: [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell')].filter(c => c.offsetParent !== null).length,
    folded: document.querySelectorAll('.jp-NotebookPanel .jp-MarkdownHeadingCollapsed').length,
})"""
ACTIVE_CELL = "() => [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell.jp-mod-active')].map(c => c.id)"


def test_tour_lab_keyboard(page, lab):
    """Lesson 00's lab driven with the keyboard: presses during a run land on the slider and keep its focus (none
    reaches the notebook, whose arrow keys fold headings), a new width says it compiles, a wreck warns."""
    shots = Shots(page, "00")
    run_all(page, lab, "00_tour.ipynb", shots)
    digits = Dashboard(page, "Train an MLP on the digits")
    with shots.step("digits-lab"):
        digits.show()
        assert EPOCH.match(digits.status.inner_text()) and digits.status.locator(".mlkit-plain").count() == 1
        view = page.evaluate(NOTEBOOK_VIEW)
        assert view["folded"] == 0, view
    with shots.step("four-presses"):
        digits.watch()
        assert digits.keys("learning rate", *["ArrowRight"] * 4) == "2.5e-3"  # four steps of 0.1 in log10 from 1e-3
        status = digits.run_over(20)
        assert digits.slider("learning rate").locator(".widget-readout").inner_text() == "2.5e-3", status
        assert digits.focused("learning rate")
        assert page.evaluate(NOTEBOOK_VIEW) == view
    with shots.step("new-width-compiles"):
        digits.watch()
        assert digits.keys("width", "ArrowRight") == "136"
        digits.run_over(20)
        seen = digits.statuses()
        assert seen and seen[0].startswith("compiling"), seen
        assert digits.focused("width") and page.evaluate(NOTEBOOK_VIEW) == view
    with shots.step("diverged-warns"):
        digits.watch()
        assert digits.keys("learning rate", "End") == "1.0e+1"
        digits.run_over()
        warning = digits.status.locator(".mlkit-warning")
        expect(warning).to_contain_text("diverged")
        expect(warning).to_contain_text("Try a lower learning rate")
        assert digits.focused("learning rate") and page.evaluate(NOTEBOOK_VIEW) == view
        digits.show()
    assert not page.evaluate(PROBLEMS)


def test_training_loop_playground(page, lab):
    shots = Shots(page, "05")
    run_all(page, lab, "05_training_loop.ipynb", shots)
    playground = Dashboard(page, "Playground: watch the boundary form")
    with shots.step("playground"):
        playground.show()
        assert EPOCH.match(playground.status.inner_text())
    with shots.step("learning-rate-moved"):
        playground.watch()
        assert playground.press("learning rate", "ArrowRight") == "1.3e-2"  # one step of 0.1 in log10
        playground.run_over(40)
    with shots.step("epochs-moved"):
        playground.watch()
        assert playground.press("epochs", "ArrowRight") == "45"
        playground.run_over(45)
    with shots.step("train-pressed"):
        playground.watch()
        playground.train.click()
        playground.run_over(45)
        playground.show()
    with shots.step("data-set-by-keyboard"):  # the arrow keys reach a focused dropdown, not the notebook's cells
        choice = playground.root.locator(".widget-dropdown", has=page.locator(".widget-label", has_text="data set"))
        select = choice.locator("select")
        shown = "s => s.options[s.selectedIndex].text"
        playground.watch()
        select.focus()
        before, view, active = select.evaluate(shown), page.evaluate(NOTEBOOK_VIEW), page.evaluate(ACTIVE_CELL)
        page.keyboard.press("ArrowDown")
        after = select.evaluate(shown)
        assert after != before, f"ArrowDown on the focused dropdown left it at {before!r}"
        playground.run_over(45)
        assert page.evaluate(NOTEBOOK_VIEW) == view and page.evaluate(ACTIVE_CELL) == active
        assert select.evaluate("s => s === document.activeElement")
        playground.show()
    assert not page.evaluate(PROBLEMS)


def test_overfitting_lab_stop(page, lab):
    shots = Shots(page, "06")
    run_all(page, lab, "06_overfitting.ipynb", shots)
    overfitting = Dashboard(page, "Overfitting: shrink the data, grow the model")
    with shots.step("overfitting-lab"):
        overfitting.show()
    with shots.step("all-training-examples"):
        overfitting.watch()
        assert overfitting.press("training examples", "End") == "1169"  # the whole training set: slower epochs
        overfitting.run_over(100)
    with shots.step("stopped"):
        overfitting.watch()
        assert overfitting.press("epochs", "End") == "300"  # a long run, started on release
        expect(overfitting.status).to_have_text(
            re.compile(r"^epoch ([3-9]|\d\d+)/300 · "), timeout=TRAIN_TIMEOUT * 1000
        )
        overfitting.stop.click()
        overfitting.run_over()
        expect(overfitting.status).to_contain_text("stopped", timeout=TRAIN_TIMEOUT * 1000)
        status = overfitting.status.inner_text()
        done = int(EPOCH.match(status).group(1))
        assert done < 300 and f"stopped by you after epoch {done}" in status, status
        overfitting.show()
    capacity = Dashboard(page, "Capacity: fit a noisy curve")
    with shots.step("capacity-lab"):
        capacity.show()
    assert not page.evaluate(PROBLEMS)


def test_errors_are_seen(page, lab):
    """The checks above would see a failing cell: a notebook that fails on purpose."""
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "mlkit", "display_name": "Python (mlkit)"}})
    notebook.cells = [
        nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider(description='n')"),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    nbformat.write(notebook, lab.notebooks / "fails_on_purpose.ipynb")
    with pytest.raises(AssertionError, match=r"(?s)cell 2 shows an error: .*ZeroDivisionError.*cell 3 did not run"):
        run_all(page, lab, "fails_on_purpose.ipynb", Shots(page, "fails-on-purpose"))


def test_serving_lab_answers_a_slider(page, lab):
    """Lesson 13 as a learner meets it: Run All leaves the dashboard's servers running, so a slider moved
    afterwards measures at once, with no server to start."""
    shots = Shots(page, "13")
    run_all(page, lab, "13_serving.ipynb", shots)
    serving = Dashboard(page, "Serving under load")
    with shots.step("serving-lab"):
        serving.show()
    with shots.step("rate-moved"):
        rate = serving.press("requests/s", "ArrowRight")  # the readout moves at once; the run starts on release
        expect(serving.status).to_contain_text(f"{rate} requests/s,", timeout=TRAIN_TIMEOUT * 1000)
        assert "error" not in serving.status.inner_text(), serving.status.inner_text()
        assert "started its server" not in serving.status.inner_text(), serving.status.inner_text()
        serving.show()
    assert not page.evaluate(PROBLEMS)
