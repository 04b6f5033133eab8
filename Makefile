# The two commands of the README: `make run` and `make test`. Both set up
# .venv from this repository's own files first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.revenge-installed

.PHONY: run test install bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# compat mode puts the checkout itself on sys.path, so twistd finds
	# twisted/plugins/revenge_plugin.py here as it would in site-packages.
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= revenge

test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache
