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

.PHONY: all book test env lint data data-smoke notebooks notebooks-smoke html html-smoke chromium unit clean help synth paper-memory pdf pdf-smoke paper-check

all: book

help:
	@echo "make book  - build the whole book (data, notebooks in the default profile, HTML) into _build/html"
	@echo "make test  - run every test (smoke data, smoke notebooks + nbval, smoke book + HTML/browser checks, unit tests)"
	@echo "make pdf   - the whole book (default profile) as one PDF, _build/book.pdf, printed offline by headless chromium"
	@echo "make unit  - lint, then unit tests only (no data, no book)"
	@echo "make lint  - ruff (pyflakes, pycodestyle, import order) over xmlib, tests, benchmarks and notebooks"
	@echo "make synth - paper-shaped synthetic data (f30k, coco, mediaeval, deepranking) at SYNTH_SCALE (0.01) in SYNTH_DIR"
	@echo "make paper-check - every chapter's paper profile on synthetic paper-shaped data (CPU, PAPER_STEPS steps a model), rendered into $(PAPER_DIR)"
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

# Two notebooks at a time (each kernel with its own training workers): one chapter's start, last jobs and
# analysis leave cores idle that the other fills. BOOK_JOBS=1 runs them one after another.
BOOK_JOBS ?= 2
notebooks: data
	$(PYTHON) -m xmlib.book.run --profile default --install --jobs $(BOOK_JOBS)

notebooks-smoke: data-smoke
	$(PYTHON) -m xmlib.book.run --profile smoke --install --jobs $(BOOK_JOBS)

html: notebooks
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile default
	$(PYTHON) -m xmlib.book.timings time --profile default --stage sphinx --step "jupyter-book build" \
	  --stamp _build/html/.xmlib-inputs.json -- $(JB) build . $(JB_FLAGS)
	@$(PYTHON) -m xmlib.book.timings report --profile default
	@echo "The book is in _build/html/index.html"

html-smoke: notebooks-smoke
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile smoke
	$(PYTHON) -m xmlib.book.timings time --profile smoke --stage sphinx --step "jupyter-book build" \
	  --stamp $(SMOKE_OUT)/_build/html/.xmlib-inputs.json -- $(JB) build . --path-output $(SMOKE_OUT) $(JB_FLAGS)
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
	$(PYTHON) -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder -m "not book and not browser"

# The smoke book's two Sphinx builds (HTML for the browser tests, one page for the PDF) are single-threaded:
# they run side by side once the smoke notebooks have run.
# The tests in TEST_JOBS worker processes (pytest-xdist): each file whole in one worker, the files that
# start processes and the notebooks first (tests/conftest.py). TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2
test: lint notebooks-smoke chromium
	$(MAKE) --no-print-directory -j2 html-smoke pdf-smoke
	XMLIB_PROGRESS=0 XMLIB_BOOK_HTML=$(SMOKE_OUT)/_build/html XMLIB_BOOK_PDF=$(PDF_SMOKE_OUT)/book.pdf XMLIB_REQUIRE_BOOK=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder tests \
	  --durations=15 --nbval-lax --nbval-current-env --nbval-cell-timeout=600 _build/executed/smoke/*.ipynb

SYNTH_DIR ?= _build/synth
SYNTH_SCALE ?= 0.01
synth: env
	for like in f30k coco mediaeval deepranking; do \
	  $(PYTHON) -m xmlib.data synth --like $$like --out $(SYNTH_DIR)/$$like --scale $(SYNTH_SCALE); done

paper-memory: env
	$(PYTHON) benchmarks/paper_memory.py --scale 1.0 --batch-size 32 --workers 2

# Every chapter's `paper` profile end to end on synthetic paper-shaped data, on CPU: each trained model stops
# after PAPER_STEPS optimiser steps (max_steps), evaluation runs at full shape. The synthetic data (SYNTH_SCALE)
# goes to $(PAPER_DIR)/synth-<scale>; the executed notebooks to _build/executed/paper (00, 02-05 in the paper
# profile; 01, the open data, has no paper-scale data: its smoke build); the book to $(PAPER_DIR)/_build/html.
# The check's own shrinking, beside the cap: 2 seeds, smaller grids, SGRAF batches of 32 (paper: 128, ~3.5 GB a
# step) and, for Deep Ranking, the smoke emoji pictures at their stored 64 px (paper: 224 px). See
# docs/paper_scale.md. Each step prints its wall time and peak RSS (of the largest single process).
PAPER_DIR ?= _build/paper-check
PAPER_STEPS ?= 2
# absolute: the notebooks run in notebooks/
PAPER_SYNTH = $(abspath $(PAPER_DIR))/synth-$(SYNTH_SCALE)
PAPER_TIME = /usr/bin/time -f "[paper-check] %e s wall, peak RSS %M KB (largest process): %C"
PAPER_RUN = $(PAPER_TIME) $(PYTHON) -m xmlib.book.run --profile paper --install
PAPER_SHRINK = -p max_steps $(PAPER_STEPS) -p seeds 2
PAPER_DCMM = -p data $(PAPER_SYNTH)/mediaeval -p test_split test -p lr_grid "[0.001]" -p hidden_grid "[32]" -p inner_folds 1 \
  -p fig2_k "[3, 0]" -p fig2_depth "[1]"
PAPER_DR = -p benchmark smoke -p stream_dir $(PAPER_SYNTH)/deepranking -p fractions "[0.0, 1.0]" \
  -p image_size 64 -p convnet_image_size 64
PAPER_SGRAF = -p data_dir $(PAPER_SYNTH)/f30k -p batch_size 32 -p steps_grid "[1, 3]" -p ablation_local_steps "[3]" -p baseline_epochs 2
paper-check: data-smoke
	for like in f30k mediaeval deepranking; do \
	  $(PAPER_TIME) $(PYTHON) -m xmlib.data synth --like $$like --out $(PAPER_SYNTH)/$$like --scale $(SYNTH_SCALE); done
	$(PAPER_RUN) notebooks/00_building_blocks.py
	$(PAPER_TIME) $(PYTHON) -m xmlib.book.run --profile smoke --install notebooks/01_data.py
	$(PAPER_RUN) notebooks/02_dcmm.py $(PAPER_SHRINK) $(PAPER_DCMM)
	$(PAPER_RUN) notebooks/03_deepranking.py $(PAPER_SHRINK) $(PAPER_DR)
	$(PAPER_RUN) notebooks/04_sgraf.py $(PAPER_SHRINK) $(PAPER_SGRAF)
	$(PAPER_RUN) notebooks/05_scorecard.py -p n_sim 40 -p sim_boot 100
	$(PYTHON) -m xmlib.book.check_notebooks notebooks
	$(PYTHON) -m xmlib.book.timings page --profile paper
	$(PYTHON) -m xmlib.book.timings time --profile paper --stage sphinx --step "jupyter-book build" -- \
	  $(PAPER_TIME) $(JB) build . --path-output $(PAPER_DIR) $(JB_FLAGS)
	@$(PYTHON) -m xmlib.book.timings report --profile paper
	@echo "The paper-check book is in $(PAPER_DIR)/_build/html/index.html"

clean:
	rm -rf _build runs notebooks/*.ipynb
