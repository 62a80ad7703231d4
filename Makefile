# terril — two commands do all the set-up on a fresh Debian / Raspberry Pi OS machine:
#   make demo   simulated town: devices, broker, agents, ingest, InfluxDB
#   make test   the test suite against real Mosquitto, InfluxDB, Modbus servers and serial ptys

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps venv demo test bench check lint clean

all: venv

# System packages the tests and the demo start themselves (never as services); chromium is the
# real browser the public-site tests drive through Playwright (pip), which never downloads one.
deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v influxd   >/dev/null 2>&1 || missing="$$missing influxdb"; \
	command -v socat     >/dev/null 2>&1 || missing="$$missing socat"; \
	command -v openssl   >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: deps $(VENV)/.installed

demo: venv
	$(PY) -m agent.demo

# ruff (rules in pyproject.toml) on everything, mypy --strict on agent/: run before the tests, so CI runs it.
lint: venv
	$(PY) -m ruff check agent tests bench
	$(PY) -m mypy

test: venv lint
	PATH="$$PATH:/usr/sbin" $(PY) -m pytest -q

check: test

bench: venv
	$(PY) bench/edge.py

clean:
	rm -rf $(VENV) run build *.egg-info
