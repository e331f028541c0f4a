# Two commands set everything up from nothing: `make lab` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL := mlkit

.PHONY: lab test check lint env browser bench site clean

env: $(VENV)/.installed

# A fresh virtual environment with mlkit (editable), the notebook and test tools, the ONNX path, nbgrader,
# and a Jupyter kernel named "mlkit" registered inside the environment (mlkit/tools/kernel.py says how).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,serve,test,onnx,site,grade]'
	$(PY) -m mlkit kernel
	touch $@

lab: env
	$(VENV)/bin/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/00_tour.ipynb

# Debian's Chromium for the browser test (tests/test_browser.py): installed when missing and we are root,
# as in CI; otherwise that one test skips (under CI=true it fails) and says how to enable it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "Chromium is not installed, so the browser test will be skipped. To run it: sudo apt-get install chromium"

# Lint (ruff), format check (ruff format) and types (mypy, configured in pyproject.toml) on the package;
# ruff also reads the tests, examples, worked solutions and the site config.
lint: env
	$(VENV)/bin/ruff check mlkit tests examples notebooks/solutions site
	$(VENV)/bin/ruff format --check mlkit tests examples notebooks/solutions site
	$(VENV)/bin/mypy

# Lint and types first, then pytest for the package, nbval for every notebook, in one run
# (the browser test and the wheel test included). Two pytest-xdist workers, one file each at a time
# (--dist loadfile: a notebook's cells share one kernel, a module's fixtures one process).
PYTEST := $(PY) -m pytest -n 2 --dist loadfile
test: env browser lint
	$(PYTEST) tests notebooks --nbval-lax --nbval-kernel-name $(KERNEL) --durations=10

# The inner loop (about 2 minutes): lint, types and the unit tests. Left to make test: the notebooks, the browser,
# the site and its slides, the wheel and the hosted path, grading, the bench, and the tests that run servers or
# child processes (serving, hostile clients, the artifact fuzzer, several processes training one model).
CHECK_SKIPS := browser site wheel hosted grading bench solutions lab_setup serve serve_hostile \
  artifact_fuzz lessons_serving parallel
check: env lint
	$(PYTEST) tests $(foreach t,$(CHECK_SKIPS),--ignore=tests/test_$(t).py)

# wrk, the load generator the serving benchmark prefers (a C client that leaves the cores to the servers):
# installed with apt when missing and we are root; otherwise the bench uses its own aiohttp client and says so.
bench: env
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "wrk is not installed: the serving benchmark uses mlkit's own client. To use wrk: sudo apt-get install wrk"
	$(PY) -m mlkit bench

# The course site: every lesson run once (a few minutes), rendered by Sphinx + myst-nb (site/conf.py) into site/_build/,
# with each lesson's reveal.js slides (site/slides.py) and the instructor guide (docs/teaching.md) that links them.
site: env
	rm -rf site/_build
	$(VENV)/bin/sphinx-build -T -W --keep-going -q -c site . site/_build/html
	@echo "The site is built: open file://$(CURDIR)/site/_build/html/index.html in a browser"
	@echo "Slides: site/_build/html/slides/; the instructor guide: file://$(CURDIR)/site/_build/html/docs/teaching.html"

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
