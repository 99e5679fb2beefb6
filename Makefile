# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz lint bench soak clean install compat interop-deps

HOOKS := hooks/gws-outbound-audit hooks/gws-outbound-webhook
# The interop tests run the CometD project's own server and client: node packages, installed
# by `make test` whenever node and npm are on PATH (without them those tests are skipped).
INTEROP := tests/interop
NODE_STAMP := $(INTEROP)/node_modules/.installed
HAVE_NODE := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo yes)

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(HOOKS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(HOOKS))
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ifeq ($(HAVE_NODE),yes)
interop-deps: $(NODE_STAMP)
else
interop-deps:
	@echo "node or npm not found: the interop tests will be skipped (install Node 20 to run them)"
endif

demo: $(STAMP)
	$(PY) examples/host.py

# Two workers (pytest-xdist), a test file on one worker (its module-wide fixtures set up
# once). `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP) interop-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The hypothesis tests under the explore profile (tests/conftest.py): random examples, ten
# times as many (GWS_HYPOTHESIS_SCALE), failures kept in .hypothesis/ and replayed first.
# `make test` runs them deterministically.
fuzz: $(STAMP)
	GWS_HYPOTHESIS_PROFILE=explore $(PY) -m pytest tests/unit tests/fuzz -m hypothesis $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check gws_outbound_plugin
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

soak: $(STAMP)
	$(PY) -m pytest tests/faults/test_soak.py -m soak --soak-cancels=5000 -s

clean:
	rm -rf $(VENV) build *.egg-info $(INTEROP)/node_modules

# The unit, engine, integration and simulator suites on every supported Python found by pyenv.
compat:
	for v in 3.11 3.12 3.13; do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python 2>/dev/null | head -1); \
	  test -n "$$py" || { echo "python $$v not found, skipped"; continue; }; \
	  $$py -m venv .venv-$$v && .venv-$$v/bin/pip install --quiet -e '.[test]' $(addprefix -e ,$(HOOKS)) && \
	  .venv-$$v/bin/python -m pytest tests/unit tests/engine tests/integration tests/simulator -q || exit 1; \
	done
