# synthaug developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Every plugin distribution under plugins/ is installed (editable) into the dev environment.
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
DEMO_OUT ?= demo-output
# `make dist` writes the wheel and sdist of the core and of every plugin here.
DIST_DIR ?= dist

.PHONY: demo test lint install dev dist clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# Light install for the demo: the core and scikit-learn (its digits data set ships with it).
$(VENV)/.demo-stamp: $(PY) pyproject.toml
	$(PIP) install -e ".[demo]"
	touch $@

# Full development install. torch is pinned and installed first: an unpinned torch pulled in
# by another package would download a multi-GB CUDA build (see constraints.txt).
$(VENV)/.dev-stamp: $(PY) pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml)
	$(PIP) install -c constraints.txt torch
	$(PIP) install -c constraints.txt -e ".[dev,torch,diffusion,eval]" tensorflow-cpu keras \
		$(foreach p,$(PLUGINS),-e $(p))
	touch $@ $(VENV)/.demo-stamp

install: $(VENV)/.demo-stamp
dev: $(VENV)/.dev-stamp

demo: $(VENV)/.demo-stamp
	$(VENV)/bin/synthaug demo --out $(DEMO_OUT)

# ruff (lint + import order; rules in pyproject.toml) first: a lint error fails `make test` too.
LINT_PATHS := src plugins tests examples benchmarks conftest.py

lint: $(VENV)/.dev-stamp
	$(PY) -m ruff check $(LINT_PATHS)

test: $(VENV)/.dev-stamp lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
		TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

# Wheels and sdists of the core and every plugin under plugins/, then `twine check`, without the
# dev install: the builder is $(PYTHON) when it already has `build`, `twine` and `setuptools`
# (then it works offline), else a small $(DIST_VENV) with only those three.
# `make dist DIST_PY=/path/to/python` picks another interpreter.
DIST_VENV ?= .venv-dist
DIST_PY ?= $(shell $(PYTHON) -c "import build, twine, setuptools" >/dev/null 2>&1 && echo $(PYTHON) || echo $(DIST_VENV)/bin/python)
$(DIST_VENV)/bin/python:
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip --disable-pip-version-check -q install build twine "setuptools>=77"
dist: $(if $(filter $(DIST_VENV)/bin/python,$(DIST_PY)),$(DIST_VENV)/bin/python)
	rm -f $(DIST_DIR)/*.whl $(DIST_DIR)/*.tar.gz
	$(foreach p,. $(PLUGINS),$(DIST_PY) -m build --no-isolation --outdir $(DIST_DIR) $(p) >/dev/null &&) true
	$(DIST_PY) -m twine check --strict $(DIST_DIR)/*

clean-venv:
	rm -rf $(VENV)
