# Two commands set everything up from nothing: `make lab` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
KERNEL := mlkit

.PHONY: lab test env bench clean

env: $(VENV)/.installed

# A fresh virtual environment with mlkit (editable), the notebook and test tools,
# and a Jupyter kernel named "mlkit" registered inside the environment.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test]'
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (mlkit)"
	touch $@

lab: env
	$(VENV)/bin/jupyter lab notebooks/

# pytest for the package, nbval for every notebook, in one run.
test: env
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-kernel-name $(KERNEL) --durations=5

bench: env
	$(PY) -m mlkit bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
