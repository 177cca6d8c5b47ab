#!/usr/bin/env bash
# Installs what the tests need (see scripts/setup.sh) and runs the whole suite.
# The real-machine corpus is read from $FLEETCOMPAT_FIXTURES, by default
# ../shared/fixtures beside the repo; under CI=true its absence fails the run.
# Ansible itself goes into .venv-ansible (FLEETCOMPAT_ANSIBLE), for one test module.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

# Real Ansible, in a venv of its own (its dependencies stay out of .venv), for
# tests/test_inventory_ansible.py to hold the inventory reader against. Installed
# once; a later run finds it and goes on at once.
ansible_venv="$(pwd)/.venv-ansible"
if [ ! -x "$ansible_venv/bin/ansible-inventory" ]; then
  mkdir -p "$ansible_venv"
  log="$ansible_venv/pip-install.log"
  echo "test: installing ansible-core into .venv-ansible (log: $log)" >&2
  if ! { python3 -m venv "$ansible_venv" &&
         "$ansible_venv/bin/python" -m pip install --disable-pip-version-check \
           'ansible-core>=2.16,<2.20'; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "test: installing ansible-core failed; the whole log is in $log" >&2
    exit 2
  fi
fi
export FLEETCOMPAT_ANSIBLE="$ansible_venv"

export FLEETCOMPAT_FIXTURES="${FLEETCOMPAT_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
