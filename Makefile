# huren: every developer and CI entry point. `make demo` and `make test` work on a fresh clone:
# they create the local virtualenv (.venv) first when it is missing or out of date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The benchmark peer (cwt) in its own virtualenv: it needs cbor2 < 6, huren needs cbor2 6.
PEER_VENV  := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed
PYTEST_ARGS ?=
# buf (proto lint and breaking-change checks), pinned, from the npm registry into .tools/.
BUF_VERSION := 1.75.0
TOOLS       := .tools
BUF         := $(TOOLS)/node_modules/.bin/buf
BUF_STAMP   := $(TOOLS)/.buf-$(BUF_VERSION)

.PHONY: all demo test unit lint lint-proto proto schemas browser nginx h2load screenshots bench conformance venv tools clean

all: test

venv: $(STAMP)

tools: $(BUF_STAMP)

$(BUF_STAMP):
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)
	@test -x $(BUF)
	@touch $@

# Reinstall whenever the declared dependencies or the pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/huren demo

test: lint browser nginx
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (playwright's own download cannot be reached), with
# CJK fonts so that screenshots show Chinese. Installed when missing (CI runs as root on Debian).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then \
		echo "installing chromium and fonts-noto-cjk (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi
	@test -x $(CHROMIUM) || { echo "no Chromium at $(CHROMIUM): the browser tests need it"; exit 1; }

# The front's tests (tests/integration/test_front.py) run Debian's nginx, installed when missing:
# `huren front` writes its configuration (docs/front.md).
nginx:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { \
		echo "installing nginx (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "no nginx: the front's tests need it"; exit 1; }

# The README's pictures: the browser tests write every screen into build/screenshots/; these few
# are copied into docs/images/ (committed).
SHOTS := traveller-hangzhou-code-phone checkpoint-green-phone checkpoint-camera-phone checkpoint-two-codes-desktop \
	transfer-phone transfer-refused-en
screenshots: $(STAMP) browser
	$(BIN)/python -m pytest -q tests/integration/test_pages_browser.py tests/integration/test_web_browser.py \
		tests/integration/test_transfer_browser.py
	mkdir -p docs/images
	for shot in $(SHOTS); do cp build/screenshots/$$shot.png docs/images/; done

# The quick local loop: the pure unit tests only, hypothesis with a tenth of the examples.
unit: $(STAMP)
	HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

lint: $(STAMP) lint-proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# buf lint (STANDARD and COMMENTS rules), and buf breaking against the latest release tag
# (v*) once there is one.
lint-proto: $(BUF_STAMP)
	cd proto && ../$(BUF) lint
	@tag=$$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true); \
	if [ -n "$$tag" ]; then \
		echo "buf breaking against $$tag"; \
		$(BUF) breaking proto --against ".git#tag=$$tag,subdir=proto"; \
	else \
		echo "buf breaking: no release tag yet, nothing to compare with"; \
	fi

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

# The JSON Schemas of the profile and policy languages, into docs/schemas/.
schemas: $(STAMP)
	$(BIN)/python scripts/gen_schemas.py

$(PEER_STAMP): constraints-peer.txt
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(PEER_VENV)/bin/python -m pip install --quiet -r constraints-peer.txt
	@touch $@

# bench_workers.py drives unary calls with h2load too (nghttp2's load generator, in C: a
# generator's CPU per call a sixth of grpc.aio's on this machine). Installed when missing.
h2load:
	@command -v h2load >/dev/null || { \
		echo "installing nghttp2-client for h2load (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null; }

# Every benchmark prints its figures and writes them as JSON into build/bench/ (one file each).
BENCH_OUT := build/bench
bench: $(STAMP) $(PEER_STAMP) h2load nginx
	mkdir -p $(BENCH_OUT)
	$(BIN)/python scripts/bench.py --json $(BENCH_OUT)/ratios.json
	$(BIN)/python scripts/bench_steps.py --json $(BENCH_OUT)/steps.json
	$(BIN)/python scripts/bench_scale.py --json $(BENCH_OUT)/scale.json
	$(BIN)/python scripts/bench_latency.py --json $(BENCH_OUT)/latency.json
	$(BIN)/python scripts/bench_latency.py --front --json $(BENCH_OUT)/latency-front.json
	$(BIN)/python scripts/bench_propagation.py --json $(BENCH_OUT)/propagation.json
	$(BIN)/python scripts/bench_workers.py --json $(BENCH_OUT)/workers.json
	$(BIN)/python scripts/bench_latency.py --workers 2 --json $(BENCH_OUT)/latency-workers.json

conformance: $(STAMP)
	$(BIN)/python scripts/conformance.py

clean:
	rm -rf $(VENV) $(PEER_VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
