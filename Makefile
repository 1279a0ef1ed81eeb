# On a fresh machine: `make run` serves, `make test` runs every test, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The browser tests drive Debian's Chromium (never a downloaded browser build); the recipe
# tests Debian's nginx and caddy; the install test pipx.
CHROMIUM := /usr/bin/chromium
NGINX := /usr/sbin/nginx
CADDY := /usr/bin/caddy
PIPX := /usr/bin/pipx
# The shared-limits tests and bench start Debian's redis-server (never skipped).
REDIS_SERVER := /usr/bin/redis-server
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: run test bench profile clean

run: $(VENV)/.installed
	$(BIN)/pingproxy $(ARGS)

test: $(VENV)/.installed-test $(CHROMIUM) $(NGINX) $(CADDY) $(PIPX) $(REDIS_SERVER)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ARGS=--quick for a smoke run in under a minute; results in BENCHMARKS.md and bench/results.json.
bench: $(VENV)/.installed-bench $(REDIS_SERVER)
	$(BIN)/python -m bench.run $(ARGS)
	$(BIN)/python -m bench.hostile
	$(BIN)/python -m bench.hostile_heads $(ARGS)
	$(BIN)/python -m bench.out_of_files

# Where pingproxy's CPU goes under load (py-spy); summaries in bench/profiles/.
profile: $(VENV)/.installed-bench
	$(BIN)/python -m bench.profile $(ARGS)

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed setup.cfg
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Installed from Debian's packages when missing, so that a fresh machine and CI run every test.
$(CHROMIUM):
	$(APT_INSTALL) chromium

$(NGINX):
	$(APT_INSTALL) nginx

$(CADDY):
	$(APT_INSTALL) caddy

$(PIPX):
	$(APT_INSTALL) pipx

$(REDIS_SERVER):
	$(APT_INSTALL) redis-server

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
