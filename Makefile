# The two commands of the README: `make run` starts gedrag, `make test` runs every check.
# Both install what they need first (a virtualenv in .venv, pinned by requirements/constraints.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | sha1sum | cut -c1-12)
export DO_NOT_TRACK=1 SCARF_NO_ANALYTICS=true UNSTRUCTURED_DISABLE_NOTICE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install run test lint format services ocr mailshare browser vllm cypher oidc clean

$(STAMP):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, from the local CPU wheel: a resolver left alone pulls the CUDA build (GBs).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[dev]'
	# unstructured's PDF path imports it; its own dependencies would pull torchvision (CUDA).
	$(BIN)/pip install -q --no-deps unstructured-inference==1.6.14
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

run: install ocr
	@echo "gedrag: web console at http://$${GEDRAG_API__HOST:-127.0.0.1}:$${GEDRAG_API__PORT:-8000}/ once started (sign in with the API key printed on first start; API docs at /docs)"
	$(BIN)/gedrag up

services:
	bash infra/dev/services.sh

# Tesseract 5 with French and English for OCR of scans and images (apt, skipped when installed).
ocr:
	bash infra/dev/ocr.sh

# Dovecot (IMAP) and Samba (SMB) for the sources' tests, which start them unprivileged on
# loopback (apt, skipped when installed).
mailshare:
	bash infra/dev/mailshare.sh

# Debian's Chromium for the web console's browser tests (apt, skipped when already installed).
browser:
	bash infra/dev/browser.sh

# vLLM (CPU build) in its own virtualenv: it pins other torch/transformers/fastapi versions.
# The vLLM tests serve a tiny random Llama with it.
vllm:
	bash infra/dev/vllm.sh $(PY)

# Neo4j's own Cypher parser (npm, pinned by infra/dev/cypher/package-lock.json) for the unit test
# that parses every statement of the Neo4j graph store.
cypher:
	bash infra/dev/cypher.sh

# A real OpenID Connect provider (npm oidc-provider, pinned by infra/dev/oidc/package-lock.json)
# for the single sign-on tests, which run it on loopback.
oidc:
	bash infra/dev/oidc.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install services ocr mailshare browser vllm cypher oidc lint
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-vllm var .pytest_cache .mypy_cache .ruff_cache
