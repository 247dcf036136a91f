# synthaug developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Every plugin distribution under plugins/ is installed (editable) into the dev environment.
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
DEMO_OUT ?= demo-output

.PHONY: demo test install dev clean-venv

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

test: $(VENV)/.dev-stamp
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
		TF_CPP_MIN_LOG_LEVEL=2 HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
