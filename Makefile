# Zoom → Symbl meeting insights. `make help` lists the targets.
# `make demo` and `make test` set everything up themselves on a fresh Debian machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
SYS_STAMP := .cache/system-packages.stamp
# ffmpeg/ffprobe (the merger, the fakes), espeak-ng (synthetic speech), chromium (browser tests)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# `make test` runs the tiers on this many pytest-xdist workers (each its own process, moto server
# and fakes); 0 runs them in one process.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-18s %s\n", $$1, $$2}'

$(SYS_STAMP): Makefile
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(dir $@) && touch $@

# The groups, then the merger's speech model: silero-vad without its torch dependency (pyproject's
# [tool.insights.no-deps]; its version is constraints.txt's).
$(PIP_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[webhook,merger,notifier,sandbox,dev]'
	$(PY) -m pip install -q --no-deps -c constraints.txt silero-vad
	@touch $@

.PHONY: setup
setup: $(SYS_STAMP) $(PIP_STAMP) ## Install Debian packages (apt-get) and Python packages (.venv)

.PHONY: test
test: setup ## Run every test tier (unit, integration, e2e)
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: setup ## Unit tier only (no network)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: setup ## Integration tier (moto server, real ffmpeg, fakes on loopback)
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: setup ## End-to-end tier (the whole pipeline on the local stack)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

.PHONY: test-localstack
test-localstack: setup ## e2e tier against a LocalStack at AWS_ENDPOINT_URL, if one answers
	@if $(PY) -c "import os,sys,urllib.request; u=os.environ.get('AWS_ENDPOINT_URL'); \
	  sys.exit(0 if u and urllib.request.urlopen(u + '/_localstack/health', timeout=3).status == 200 else 1)" 2>/dev/null; then \
	  $(PY) -m pytest tests/e2e $(PYTEST_ARGS); \
	else \
	  echo "test-localstack: SKIPPED: no LocalStack answers at AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-(unset)}."; \
	  echo "  LocalStack needs Docker (and an account token); start it, export AWS_ENDPOINT_URL, run again."; \
	fi

.PHONY: lint
lint: setup ## ruff, ruff format --check, mypy on services/, then checkov, terraform fmt, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/lint-infra.sh

.PHONY: format
format: setup ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: demo
demo: setup ## A synthetic meeting through the pipeline on the local stack
	$(PY) -m sandbox.demo $(DEMO_ARGS)

# The other speech detectors bench/vad.py compares with the merger's (the `vad` extra); silero-vad
# comes with `setup`. Not part of `setup`.
VAD_STAMP := $(VENV)/.installed-vad

$(VAD_STAMP): $(PIP_STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[vad]'
	@touch $@

.PHONY: bench
bench: setup $(VAD_STAMP) ## Benchmarks: ratios against a baseline measured in the same run
	@failed=""; for bench in bench/[!_]*.py; do echo "== $$bench"; $(PY) $$bench || failed="$$failed $$bench"; done; \
	if [ -n "$$failed" ]; then echo "bench: targets missed in:$$failed"; exit 1; fi

IMAGE_TAG ?= local
# Images Lambda and Fargate accept: --provenance=false, because BuildKit otherwise attaches a
# provenance attestation and the pushed tag becomes an OCI image index, which Lambda refuses;
# --platform linux/amd64, because the functions and the task are declared x86_64 (terraform/),
# whatever the build machine is. AWS's Lambda image build command carries both:
# https://docs.aws.amazon.com/lambda/latest/dg/python-image.html
.PHONY: build
build: ## Build the Lambda images (one per service) and the Fargate task image (linux/amd64)
	@if ! docker info >/dev/null 2>&1; then \
	  echo "build: no Docker engine answers here (docker info failed); nothing built."; \
	  echo "  Run 'make build' where Docker runs, then push as terraform/README.md says."; \
	  exit 0; \
	fi; \
	for service in webhook merger submitter notifier; do \
	  docker build --provenance=false --platform linux/amd64 -f docker/lambda.Dockerfile \
	    --build-arg SERVICE=$$service -t zoom-symbl-insights/$$service:$(IMAGE_TAG) . || exit 1; \
	done; \
	docker build --provenance=false --platform linux/amd64 -f docker/task.Dockerfile \
	  -t zoom-symbl-insights/merger-task:$(IMAGE_TAG) .

.PHONY: constraints
constraints: ## Re-pin constraints.txt from the current .venv
	@{ echo "# Pinned versions of every package the dependency groups install (pip install -c constraints.txt ...)."; \
	   echo "# Versions only: no hashes or download addresses. Regenerate with 'make constraints'."; \
	   $(PY) -m pip freeze --exclude-editable | grep -vi '^zoom-symbl-insights' | sort -f; } > constraints.txt

.PHONY: clean
clean: ## Remove the virtualenv, caches and test artefacts
	rm -rf $(VENV) .cache .artifacts .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
