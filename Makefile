# make test: build .venv from nothing and run the tests. make demo: the product tour. make bench: benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# constraints.txt pins the rest so that pip does not backtrack. torch 2.13.0 CPU build first, so that nothing pulls a CUDA build (on GitHub: TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu")
TORCH_PIP_ARGS ?=

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= ghcr.io/modelreg/modelreg:$(VERSION)
CONTAINER ?= podman
# Where no registry is reachable, a script that builds a local python:3.11-slim and prints podman settings:
# CONTAINERS_SETUP, else shared/containers/base-image.sh in a folder above the checkout (this project's machines)
CONTAINERS_SETUP ?= $(firstword $(wildcard $(addsuffix /shared/containers/base-image.sh,.. ../.. ../../..)))

.PHONY: venv tools test lint demo bench bench-install image image-test containers-setup clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[torch,s3,serve,sign,dev]"
	touch $(STAMP)

venv: $(STAMP)

# checkov judges the rendered manifests (tests/test_checkov.py); its pins (boto3, packaging, networkx,
# dpath) conflict with DVC's S3 extra and moto, so it gets a venv of its own
CHECKOV := .tools/checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet "checkov==3.3.30"

# the Gateway API and Prometheus Operator CRD validators (@kubernetes-models, generated from the CRDs) that
# tests/crd/validate.mjs runs on the HTTPRoute, PodMonitor and PrometheusRule modelreg renders; needs node and npm
K8S_MODELS := .tools/k8s-models/node_modules/.package-lock.json
$(K8S_MODELS): tests/crd/package.json tests/crd/package-lock.json
	rm -rf .tools/k8s-models && mkdir -p .tools/k8s-models
	cp tests/crd/package.json tests/crd/package-lock.json .tools/k8s-models/
	cd .tools/k8s-models && npm ci --silent --no-audit --no-fund

tools: $(CHECKOV) $(K8S_MODELS)

test: venv tools
	$(BIN)/python -m pytest -n auto --dist loadgroup -q

# ruff (style, import order, lines <= 100), pyright (basic: every modelreg.* import resolved, zero errors),
# import-linter (imports run one way: .importlinter), vulture (no dead code); settings in pyproject.toml
lint: venv
	$(BIN)/ruff check src tests benchmarks demo .github/scripts
	$(BIN)/pyright
	$(BIN)/lint-imports
	$(BIN)/vulture

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/tour.sh

bench: venv bench-install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run.py

# what a user's install costs: each extra in a clean venv, `modelreg --help`'s import time, the image
bench-install: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/install.py

# the model server image the default templates run (PIP_FIND_LINKS / TORCH_INDEX_URL: where the CPU torch is)
image:
	$(if $(CONTAINERS_SETUP),eval "$$(bash $(CONTAINERS_SETUP))" &&) \
	$(CONTAINER) build --build-arg PIP_FIND_LINKS="$$PIP_FIND_LINKS" --build-arg TORCH_INDEX_URL="$(TORCH_INDEX_URL)" -t $(IMAGE) .

# build the image, then run it as the rendered pod would: fetch from a local and an S3 (moto) remote, serve, infer
image-test: venv image
	$(if $(CONTAINERS_SETUP),eval "$$(bash $(CONTAINERS_SETUP))" &&) \
	MODELREG_IMAGE=$(IMAGE) MODELREG_CONTAINER=$(CONTAINER) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_image.py

# where podman gets set up here (empty: nowhere); .ci/run asks
containers-setup:
	@echo $(CONTAINERS_SETUP)

clean:
	rm -rf $(VENV) .tools build *.egg-info
