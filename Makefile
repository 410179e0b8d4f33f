# Two entry points for a fresh machine; each installs what it needs first.
#   make build   the main job: compile the bundled specs
#   make test    the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup build test bench

$(BIN)/netc: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(BIN)/netc

setup: $(BIN)/netc
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null)

build: setup
	for f in specs/*.yaml; do $(BIN)/netc check -q $$f || exit 2; done

test: setup
	$(BIN)/pytest -q -n 2

bench: setup
	$(BIN)/python benchmarks/run_all.py
