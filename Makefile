# Two entry points for a fresh machine; each installs what it needs first.
#   make build   the main job: compile the bundled specs
#   make test    the test suite
#   make fuzz    the long differential run over generated specs (tools/fuzz.py)
#   make lock    re-resolve requirements.lock from pyproject.toml (+ constraints.txt)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
PIP := $(BIN)/python -m pip --disable-pip-version-check
# pip-tools runs in a venv of its own: .venv holds exactly the lock
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.6.2

.PHONY: setup build test bench generated lock fuzz

# .venv holds exactly the lock: exact versions, every file checked against its hash; the project
# itself goes in editable, without dependencies. Redone whenever the lock or pyproject.toml changes;
# what the lock no longer holds is uninstalled.
$(VENV)/.lock-installed: $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python tools/lockfile.py check
	$(PIP) install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python tools/lockfile.py sync
	@cp $(LOCK) $@

# graphviz's dot renders diagrams; Debian's chromium + chromedriver open the HTML report in tests
setup: $(VENV)/.lock-installed
	@missing=""; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

build: setup
	for f in specs/*.yaml; do $(BIN)/netc check -q $$f || exit 2; done
	$(BIN)/netc build specs/inception_v3.yaml

# pytest's exit status 5 means it collected no test: for this suite that is a broken run, not a pass
test: setup
	@$(BIN)/pytest -q -n 2 $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

# the long differential run over generated specs (tests/fuzz_oracles.py): FUZZ_EXAMPLES valid specs
# per oracle (default 1,000), every discrepancy recorded in fuzz-result.json, none stopping it; hours
fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} nice $(BIN)/python tools/fuzz.py $(ORACLES)

bench: setup
	$(BIN)/python benchmarks/run_all.py

# regenerate the committed generated/<name>.py of every bundled spec (tests check they are current)
generated: setup
	$(BIN)/python -m netc.cli.codegen

# after a change to pyproject.toml's requirements or constraints.txt, or to take newer releases
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PY) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS); }
	PATH="$(CURDIR)/$(LOCK_VENV)/bin:$$PATH" $(LOCK_VENV)/bin/python tools/lockfile.py compile
