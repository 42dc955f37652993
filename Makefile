# Set-up and the main jobs. Every target installs what it needs on a fresh machine.
#   make book   run the mini study (whatever is not computed yet) and build the book
#   make test   lint and run the test suite
#   make lab    open JupyterLab on the book and run notebooks
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PRESET  ?= mini
RESULTS ?= results/$(PRESET)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install book study test test-slurm slurm-install lint lab browser clean-book

install: $(STAMP)

# torch first, from the local CPU wheel: a plain `torch` requirement would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,scale]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (magiclib)" >/dev/null
	touch $(STAMP)

# Headless Chromium, for the test that opens the built book like a reader would.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

study: $(STAMP)
	$(VENV)/bin/magic study --preset $(PRESET)

book: study
	$(VENV)/bin/magic book --preset $(PRESET)

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests bench notebooks book
	$(PY) -m pytest -q

# The slurm executor against a real one-node cluster (scripts/slurm_cluster.sh; root, Debian packages).
slurm-install:
	@command -v slurmctld >/dev/null && command -v munged >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }

test-slurm: $(STAMP) slurm-install
	$(PY) -m pytest -q -m slurm tests/test_slurm.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench notebooks book

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --allow-root --notebook-dir=.

clean-book:
	rm -rf book/_build
