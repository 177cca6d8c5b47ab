#!/usr/bin/env bash
# Installs what the tests need (see scripts/setup.sh) and runs the whole suite.
# The real-machine corpus is read from $FLEETCOMPAT_FIXTURES, by default
# ../shared/fixtures beside the repo; under CI=true its absence fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

export FLEETCOMPAT_FIXTURES="${FLEETCOMPAT_FIXTURES:-$(cd .. && pwd)/shared/fixtures}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
