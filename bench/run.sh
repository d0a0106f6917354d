#!/usr/bin/env bash
# The one command for Tally's benchmarks (not part of the test suite):
#   bench/run.sh [all|overhead|peers|scale|soak|tracing|reconcile|hotpath] [--quick] [tally-bench flags...]
# (`soak` is not part of `all`: settled calls through the memory and Redis stores, memory and
# CPU per call sampled as they accumulate; it writes bench/results/soak.json. `tracing` is not
# either: tracing on (OTLP to Jaeger) vs off, alternating rounds; it writes bench/results/tracing.json.
# `hotpath` is not either: issue #19's table (Converse, 10 teams, every path, 500/1,000 req/s, the
# 1k–5k steps, LiteLLM, 3-replica strictness, a perf profile of the ext_proc, each target judged);
# it writes bench/results/hotpath.json and hotpath-profile.txt.)
# Installs what it needs (Envoy, Redis, Helm, LiteLLM) through scripts/tools,
# builds the measured binaries in release, runs everything on loopback, prints
# the tables and writes bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python redis helm litellm jaeger; do
  scripts/tools/$tool.sh
done
# The reconcile phase needs a real kube-apiserver and etcd.
if [ "${1:-}" = reconcile ]; then scripts/tools/kube.sh; fi
cargo build --release -p tally-extproc -p tally-tests -p tally-bench --bins
exec "${CARGO_TARGET_DIR:-target}/release/tally-bench" "$@"
