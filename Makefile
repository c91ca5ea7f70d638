# pyrun — every set-up step lives here; `make demo` and `make test` run `setup` themselves.
SHELL := /bin/bash
# Debian's interpreter: built with PGO and LTO, it starts in ~10 ms where a plain build takes
# ~12 and runs pyrun's code faster (bench/lifecycle measures the whole).
PYTHON ?= /usr/bin/python3.11
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-venv busybox-static runc umoci skopeo docker-registry containerd podman uidmap
EXAMPLES := $(wildcard bundles/examples/*/)

.PHONY: setup apt venv rootfs compile demo test unit integration lint bench clean

setup: apt venv rootfs compile

# Debian packages: installed only when missing, so a warm machine pays nothing.
apt:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	    echo "installing $(APT_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; }

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tools/install_launcher.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,lint]' \
	    --config-settings editable_mode=compat
	$(PY) tools/install_launcher.py pyrun runtime.cli.main:entry
	touch $@

# Example rootfs trees are built from Debian's static busybox, never committed.
rootfs: apt
	@for b in $(EXAMPLES); do bundles/build-rootfs "$$b/rootfs"; done

# PYTHONDONTWRITEBYTECODE is set on this machine: compile the package the way a wheel install
# would, or every `pyrun` start pays for compiling its modules again.
compile: venv
	@$(PY) -m compileall -q runtime imagetools registryd

demo: setup
	$(VENV)/bin/python tools/demo.py

test: setup lint
	$(VENV)/bin/pytest -q

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: setup
	$(VENV)/bin/pytest -q tests/integration tests/e2e

lint: venv
	$(VENV)/bin/ruff check runtime imagetools registryd tests bench tools
	$(VENV)/bin/ruff format --check runtime imagetools registryd tests bench tools
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/lifecycle.py
	$(PY) bench/seccomp.py
	$(PY) bench/images.py
	$(PY) bench/snapshot.py
	$(PY) bench/registry.py

clean:
	rm -rf $(VENV) bundles/examples/*/rootfs
