# otelstack — the README's two commands are `make plan` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
ENV ?= dev
REGION ?=
PLAN_ARGS := --env $(ENV) $(if $(REGION),--region $(REGION),)

.PHONY: help setup plan test check lint unit molecule lab bench bench-vm clean binaries dist

help:
	@echo "make plan  [ENV=dev|staging|prod] [REGION=...]  render + validate every artefact into build/ENV/"
	@echo "make test                                       install everything the tests need, run them all"
	@echo "make check                                      lint + unit/integration tests (no molecule)"
	@echo "make molecule                                   molecule scenarios on local systemd containers"
	@echo "make binaries                                   build otelcol-contrib + opampsupervisor from Go modules (cached),"
	@echo "                                                and the collector release before (the upgrade tests start there)"
	@echo "                                                and kube-apiserver, etcd, pulumi + its Python host + pulumi-kubernetes"
	@echo "                                                and prometheus, promtool, alertmanager, amtool, victoria-logs, jaeger"
	@echo "make dist                                       the built programs in the upstream archive layout, in dist/"
	@echo "make bench                                      benchmarks (print figures)"
	@echo "make bench-vm                                   site.yml converge time on the container lab"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime only: what `otelstack plan` needs.
$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	@touch $@

# Everything the tests need (Python side); system packages come from tests/lab/setup.sh.
$(VENV)/.test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(VENV)/.runtime $@

# checkov pins packages (packaging<24) older than the test environment needs, so it has its own environment;
# plan and the tests find it there (otelstack.validate.kubernetes).
CHECKOV_VENV := .cache/checkov-venv
$(CHECKOV_VENV)/.installed: constraints-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -c constraints-checkov.txt checkov
	@touch $@

setup: $(VENV)/.test $(CHECKOV_VENV)/.installed

plan: $(VENV)/.runtime $(CHECKOV_VENV)/.installed
	$(BIN)/otelstack plan $(PLAN_ARGS)

# The real programs, built from their Go modules at the catalog's pins into ~/.cache/otelstack and linked
# into .cache/bin/ (skipped when the cache holds them; minutes on a cold Go cache, a second when warm).
binaries: $(VENV)/.runtime
	$(BIN)/otelstack dist build --link .cache/bin
	$(BIN)/otelstack dist build --release previous
	$(BIN)/otelstack dist kubetools --link .cache/bin
	$(BIN)/otelstack dist backendtools --link .cache/bin

dist: $(VENV)/.runtime
	$(BIN)/otelstack dist package --out dist

# The repository is the collection otelstack.platform; Ansible finds it through this link.
COLLECTIONS := $(CURDIR)/.cache/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/otelstack/platform
ANSIBLE_DIRS := $(wildcard roles molecule playbooks inventories)

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

lint: $(VENV)/.test $(COLLECTION_LINK)
	$(BIN)/ruff check src tests bench molecule playbooks/files stacks
	$(BIN)/ruff format --check src tests bench molecule playbooks/files stacks
	$(BIN)/mypy
	$(BIN)/yamllint -s $(ANSIBLE_DIRS) .config galaxy.yml meta changelogs .ansible-lint .yamllint
	# The whole repository (galaxy.yml and changelogs/ included), as the production profile asks.
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTIONS) $(BIN)/ansible-lint -q --profile production

unit: $(VENV)/.test $(CHECKOV_VENV)/.installed
	$(BIN)/pytest -q -m "not molecule"

check: lint unit

# Molecule scenarios (systemd containers as VMs): every scenario under molecule/ runs.
SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

lab: $(VENV)/.test
	@if [ -f tests/lab/setup.sh ]; then bash tests/lab/setup.sh; fi

molecule: lab
	@if [ -z "$(SCENARIOS)" ]; then echo "molecule: no scenarios yet"; else bash tests/lab/run-molecule.sh $(SCENARIOS); fi

# The lab set-up comes first: it installs nft, which the firewall unit tests run for real; the tests run
# the real collector and supervisor, so they are built before the tests.
test: lab binaries check molecule

bench: $(VENV)/.test binaries
	$(BIN)/python bench/render_fleet.py
	$(BIN)/python bench/opamp_fleet.py
	$(BIN)/python bench/real_validate.py

# site.yml on the local container lab against `ansible all -m ping` (minutes; needs `make lab`).
bench-vm: lab
	$(BIN)/python bench/converge_site.py

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache .hypothesis
