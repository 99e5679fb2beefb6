# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench soak clean install compat

HOOKS := hooks/gws-outbound-audit hooks/gws-outbound-webhook

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(HOOKS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' $(addprefix -e ,$(HOOKS))
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/host.py

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check gws_outbound_plugin
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

soak: $(STAMP)
	$(PY) -m pytest tests/faults/test_soak.py -m soak --soak-cancels=5000 -s

clean:
	rm -rf $(VENV) build *.egg-info

# The unit, integration and simulator suites on every supported Python found by pyenv.
compat:
	for v in 3.11 3.12 3.13; do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python 2>/dev/null | head -1); \
	  test -n "$$py" || { echo "python $$v not found, skipped"; continue; }; \
	  $$py -m venv .venv-$$v && .venv-$$v/bin/pip install --quiet -e '.[test]' && \
	  .venv-$$v/bin/python -m pytest tests/unit tests/integration tests/simulator -q || exit 1; \
	done
