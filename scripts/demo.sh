#!/usr/bin/env bash
# The main job: builds Tally and runs the whole data path locally on the example
# manifests (simulated Bedrock, Envoy with the chart's gateway config,
# tally-extproc with a local Redis), drives traffic from three
# teams with the AWS SDK, prints the spend and exports the ledger to Parquet in a
# local directory (tally ledger-export), with one query on it. Installs Envoy, Redis and Helm if
# missing (cached under ~/.cache/tally). Pass --once to exit after the traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_CACHE="${TALLY_CACHE:-$HOME/.cache/tally}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TALLY_CACHE/target}"
scripts/tools/python.sh
scripts/tools/helm.sh
scripts/tools/redis.sh
cargo build --quiet --locked -p tally-extproc -p tally-operator -p tally-tests --bins
# Ctrl-C stops the demo's stack, not this script: the statement still follows.
trap ':' INT
"$CARGO_TARGET_DIR/debug/tally-demo" "$@" || [ $? -eq 130 ]
trap - INT
echo
echo "==> the chargeback statement of that traffic: tally report (docs/chargeback.md)"
"$CARGO_TARGET_DIR/debug/tally" report --ledger "$TALLY_CACHE/demo-ledger" \
  --period "$(date -u +%Y-%m)" --budgets examples/teams --catalog examples/catalog
