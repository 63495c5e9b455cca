# Two commands on a fresh machine (Python 3.11, nothing installed by hand):
#   make book   -> virtual environment, pinned packages, data, notebooks (default profile), HTML in _build/html
#   make test   -> the same set-up, smoke data + smoke notebooks + smoke book, then every test
# Everything is reused on a second run: the venv (stamped by the requirements' hash), the data cache
# (~/.cache/xmlib, or $XMLIB_CACHE), and the executed notebooks (re-run only when changed).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
REQ_HASH := $(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
ENV_STAMP := $(VENV)/.installed-$(REQ_HASH)
# Book build flags: warnings are errors, nitpicky references, report all problems at once.
JB_FLAGS := --builder html --warningiserror --nitpick --keep-going
SMOKE_OUT := _build/smoke
# The PDF: the book built as one HTML page (singlehtml builder), printed by headless chromium (xmlib.book.pdf).
PDF_OUT := _build/pdf
PDF_SMOKE_OUT := _build/smoke-pdf
export PYTHONHASHSEED := 0

.PHONY: all book test env lint data data-smoke notebooks notebooks-smoke html html-smoke chromium unit clean help synth paper-memory pdf pdf-smoke

all: book

help:
	@echo "make book  - build the whole book (data, notebooks in the default profile, HTML) into _build/html"
	@echo "make test  - run every test (smoke data, smoke notebooks + nbval, smoke book + HTML/browser checks, unit tests)"
	@echo "make pdf   - the whole book (default profile) as one PDF, _build/book.pdf, printed offline by headless chromium"
	@echo "make unit  - lint, then unit tests only (no data, no book)"
	@echo "make lint  - ruff (pyflakes, pycodestyle, import order) over xmlib, tests, benchmarks and notebooks"
	@echo "make synth - paper-shaped synthetic data (f30k, coco, mediaeval, deepranking) at SYNTH_SCALE (0.01) in SYNTH_DIR"
	@echo "make paper-memory - peak RSS of the SGRAF pipeline + one paper-size step on Flickr30K-shaped data (8.6 GB in /tmp)"

$(ENV_STAMP): requirements.txt pyproject.toml
	@test -x $(PYTHON) || $(PY) -m venv $(VENV)
	@# uv (pip as the fall-back; XMLIB_INSTALLER=pip forces it): the pinned versions, torch==2.13.0 included
	bash scripts/install_env.sh $(PYTHON)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@$(PYTHON) -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '2.13.0' else f'torch {v} installed, 2.13.0 required')"
	@rm -f $(VENV)/.installed-*
	@touch $@

env: $(ENV_STAMP)

data: env
	$(PYTHON) -m xmlib.data prepare --profile default

data-smoke: env
	$(PYTHON) -m xmlib.data prepare --profile smoke

notebooks: data
	$(PYTHON) -m xmlib.book.run --profile default --install

notebooks-smoke: data-smoke
	$(PYTHON) -m xmlib.book.run --profile smoke --install

html: notebooks
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile default
	$(PYTHON) -m xmlib.book.timings time --profile default --stage sphinx --step "jupyter-book build" -- $(JB) build . $(JB_FLAGS)
	@$(PYTHON) -m xmlib.book.timings report --profile default
	@echo "The book is in _build/html/index.html"

html-smoke: notebooks-smoke
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile smoke
	$(PYTHON) -m xmlib.book.timings time --profile smoke --stage sphinx --step "jupyter-book build" -- $(JB) build . --path-output $(SMOKE_OUT) $(JB_FLAGS)
	@$(PYTHON) -m xmlib.book.timings report --profile smoke

book: html

pdf: notebooks chromium
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile default
	$(JB) build . --path-output $(PDF_OUT) --builder singlehtml --warningiserror --nitpick --keep-going
	$(PYTHON) -m xmlib.book.pdf $(PDF_OUT)/_build/singlehtml _build/book.pdf

pdf-smoke: notebooks-smoke chromium
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile smoke
	$(JB) build . --path-output $(PDF_SMOKE_OUT) --builder singlehtml --warningiserror --nitpick --keep-going
	$(PYTHON) -m xmlib.book.pdf $(PDF_SMOKE_OUT)/_build/singlehtml $(PDF_SMOKE_OUT)/book.pdf

chromium:
	@bash scripts/ensure_chromium.sh

lint: env
	$(PYTHON) -m ruff check .

unit: env
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -m "not book and not browser"

test: lint html-smoke pdf-smoke chromium
	XMLIB_PROGRESS=0 XMLIB_BOOK_HTML=$(SMOKE_OUT)/_build/html XMLIB_BOOK_PDF=$(PDF_SMOKE_OUT)/book.pdf XMLIB_REQUIRE_BOOK=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 _build/executed/smoke/*.ipynb

SYNTH_DIR ?= _build/synth
SYNTH_SCALE ?= 0.01
synth: env
	for like in f30k coco mediaeval deepranking; do \
	  $(PYTHON) -m xmlib.data synth --like $$like --out $(SYNTH_DIR)/$$like --scale $(SYNTH_SCALE); done

paper-memory: env
	$(PYTHON) benchmarks/paper_memory.py --scale 1.0 --batch-size 32 --workers 2

clean:
	rm -rf _build runs notebooks/*.ipynb
