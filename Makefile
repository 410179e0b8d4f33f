# Two entry points for a fresh machine; each installs what it needs first.
#   make build   the main job: compile the bundled specs
#   make test    the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup build test bench generated

$(BIN)/netc: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(BIN)/netc

# graphviz's dot renders diagrams; Debian's chromium + chromedriver open the HTML report in tests
setup: $(BIN)/netc
	@missing=""; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

build: setup
	for f in specs/*.yaml; do $(BIN)/netc check -q $$f || exit 2; done
	$(BIN)/netc build specs/inception_v3.yaml

test: setup
	$(BIN)/pytest -q -n 2

bench: setup
	$(BIN)/python benchmarks/run_all.py

# regenerate the committed generated/<name>.py of every bundled spec (tests check they are current)
generated: setup
	$(BIN)/python -m netc.cli.codegen
