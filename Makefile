# The two commands of the README: `make run` and `make test`. Both set up
# .venv from this repository's own files first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.revenge-installed
# Out-of-tree provider distributions, installed beside Revenge as a third
# party's would be (their tests run with Revenge's: setup.cfg testpaths).
PLUGIN_CONFIGS := $(wildcard plugins/*/setup.cfg)
PLUGIN_DIRS := $(patsubst %/,%,$(dir $(PLUGIN_CONFIGS)))

.PHONY: run test install bench clean

$(STAMP): setup.cfg pyproject.toml $(PLUGIN_CONFIGS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# compat mode puts the checkout itself on sys.path, so twistd finds
	# twisted/plugins/revenge_plugin.py here as it would in site-packages.
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	$(if $(PLUGIN_DIRS),$(BIN)/python -m pip install --quiet $(addprefix -e ,$(PLUGIN_DIRS)))
	$(BIN)/python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/twistd --nodaemon --pidfile= revenge

test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

BENCH_STAMP := $(VENV)/.revenge-bench-installed

# matplotlib for the failover plot (the bench extra), on top of the test setup.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	touch $(BENCH_STAMP)

# Every benchmark, full length; the table and the failover plot go to bench/.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --results bench/RESULTS.md

clean:
	rm -rf $(VENV) build *.egg-info twisted/plugins/dropin.cache plugins/*/*.egg-info plugins/*/build
