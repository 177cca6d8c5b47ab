#!/usr/bin/env bash
# Sets fleetcompat up and runs the nightly job, `fleetcompat audit`, on the bundled
# example: this machine (and one host that is down on purpose) against the images
# in examples/oci-layout. Prints where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=demo-output
mkdir -p "$out"
status=0
.venv/bin/fleetcompat audit \
  -i examples/inventory.yaml \
  --oci-layout examples/oci-layout \
  --db "$out/fleetcompat.db" \
  --out "$out/report" || status=$?

case "$status" in
  0) ;;
  3) echo "demo: one host of the example inventory is unreachable on purpose;" \
          "the report marks it (exit 3 = partial result)." >&2 ;;
  *) exit "$status" ;;
esac
echo "Report: $PWD/$out/report/report.html (CSV files beside it)"
