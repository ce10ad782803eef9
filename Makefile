# One command per action: run, test, check, proto, bench.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')
# buf (proto lint and breaking-change checks) from the npm registry's @bufbuild/buf, which ships
# the binary; `make check` installs it under build/ (needs npm; `make run` and `make test` don't).
BUF_VERSION := 1.75.0
BUF := build/buf-$(BUF_VERSION)/node_modules/.bin/buf
BREAKING_AGAINST ?= main

.PHONY: run test check proto bench lint clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/veloera up

test: $(STAMP)
	$(BIN)/pytest -q

# The console's main pages at 1280 px and 390 px, as PNG files to look at (starts the whole
# system and a headless chromium like the browser tests; installs chromium when missing).
screenshots: $(STAMP)
	rm -rf build/screenshots && mkdir -p build/screenshots
	SCREENSHOT_DIR=$(abspath build/screenshots) $(BIN)/pytest -q -p no:cacheprovider \
		tests/browser/test_console_pages.py -k screenshots

proto: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=proto --grpc_python_out=proto --mypy_out=proto --mypy_grpc_out=proto \
		$(PROTOS)

$(BUF):
	npm install --prefix build/buf-$(BUF_VERSION) --no-save --no-audit --no-fund --loglevel=error \
		@bufbuild/buf@$(BUF_VERSION)

check: $(STAMP) $(BUF)
	rm -rf build/proto-check && mkdir -p build/proto-check
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=build/proto-check --grpc_python_out=build/proto-check \
		--mypy_out=build/proto-check --mypy_grpc_out=build/proto-check $(PROTOS)
	diff -r -x '*.proto' -x '__init__.py' -x '__pycache__' build/proto-check/veloera proto/veloera \
		|| (echo 'generated stubs drifted from proto/: run make proto and commit' && exit 1)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	cd proto && $(abspath $(BUF)) lint
	# Wire compatibility with $(BREAKING_AGAINST) (on main itself: main with itself). Every
	# service ships together, so a deliberate break is allowed: `make check BREAKING_AGAINST=`.
	if [ -n "$(BREAKING_AGAINST)" ] && git rev-parse -q --verify $(BREAKING_AGAINST) >/dev/null; then \
		cd proto && $(abspath $(BUF)) breaking \
			--against '$(abspath .)/.git#branch=$(BREAKING_AGAINST),subdir=proto'; \
	else echo 'buf breaking skipped (no $(BREAKING_AGAINST) branch to compare with)'; fi

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
