# make test: build .venv from nothing and run the tests. make demo: the product tour. make bench: benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# constraints.txt pins the rest so that pip does not backtrack. torch 2.13.0 CPU build first, so that nothing pulls a CUDA build (on GitHub: TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu")
TORCH_PIP_ARGS ?=

.PHONY: venv test demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[torch,s3,dev]"
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest -n 2 -q

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/tour.sh

bench: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
