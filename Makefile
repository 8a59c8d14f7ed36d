# tts-ha — the README's two commands are `make lab` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# Lab and molecule runs share one Docker engine: never let two overlap.
LOCK      := flock /tmp/tts-ha-docker.lock
# The lab node's capabilities have one home, roles/lab/vars/main.yml; molecule's platforms read
# them from here (molecule interpolates ${TTS_HA_NODE_CAPABILITIES} in molecule.yml).
export TTS_HA_NODE_CAPABILITIES = [$(shell awk '/^lab_node_capabilities:/{f=1;next} f&&/^  - /{printf "%s%s",(n++?", ":""),$$2;next} f{exit}' roles/lab/vars/main.yml)]
# ha_pair repeats on its own two nodes what make test's pytest lab covers (tests/lab: the drills
# and test_vrrp_faults); tts_service deploys what single_host deploys (both profiles on one node),
# and single_host runs its tests too. Run them with `make molecule SCENARIOS="ha_pair tts_service"`.
EXTRA_SCENARIOS := ha_pair tts_service
SCENARIOS ?= $(filter-out $(EXTRA_SCENARIOS),$(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))))

.PHONY: help deps venv collections engine images lab lab-down lint pytest molecule test bench bench-site drills clean

help:
	@echo "make lab       bring up the embedded lab and deploy site.yml on it"
	@echo "make test      yamllint + ansible-lint + pytest + the molecule scenarios but $(EXTRA_SCENARIOS)"
	@echo "make lab-down  remove every container, network and volume the lab created"
	@echo "make bench     print the benchmarks' figures"
	@echo "make bench-site  time a site.yml rerun with nothing to change on the lab (FRESH=1: also make lab)"
	@echo "make drills    every failover drill + failback, then a 10 min soak, on the running lab (optional, ~25 min)"

# Debian packages the kit and its tests need on the controller (only the missing ones).
deps:
	@scripts/install-deps.sh .ci/apt-packages.txt

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

# Galaxy when reachable; otherwise the same pinned versions bundled in the ansible package.
collections: venv
	@timeout 60 $(BIN)/ansible-galaxy collection install -r requirements.yml -p collections >/dev/null 2>&1 \
	  && echo "collections: installed from Galaxy into ./collections" \
	  || echo "collections: Galaxy unreachable; using the versions bundled in the ansible package"

# Docker engine on the controller + cached base/node images (what molecule needs).
engine images: venv collections
	$(LOCK) $(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=images

lab: venv collections
	$(LOCK) $(BIN)/ansible-playbook playbooks/lab.yml
	$(BIN)/ansible-playbook playbooks/site.yml

lab-down: venv
	$(LOCK) $(BIN)/ansible-playbook playbooks/lab.yml -e lab_state=down

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

pytest: venv deps images
	$(BIN)/pytest

molecule: venv images
	@for s in $(SCENARIOS); do \
	  echo "=== molecule test -s $$s"; \
	  $(LOCK) $(BIN)/molecule test -s $$s || exit 1; \
	done

test: venv deps images
	@scripts/run-tests.sh $(SCENARIOS)

bench: venv
	$(PY) benchmarks/bench_tts_server.py

# How long site.yml takes with nothing to change, on the running lab (`make lab` first); FRESH=1
# also times `make lab` from a removed lab with the images cached (it leaves the lab deployed).
bench-site: venv
	$(PY) benchmarks/bench_site.py $(if $(FRESH),--fresh)

# The longer optional drill suite on a running lab (`make lab` first): all seven fault classes.
drills: venv
	$(LOCK) scripts/run-drills.sh

clean: lab-down
	rm -rf build
