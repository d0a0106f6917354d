#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, and the suites that start real
# Envoy, Redis, kube-apiserver + etcd, Helm and AWS SDK clients. Installs what
# it needs first (idempotent, cached under ~/.cache/tally, outside the clone).
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_CACHE="${TALLY_CACHE:-$HOME/.cache/tally}"
# Keep cargo's build output outside the clone so a fresh clone reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TALLY_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "installing test tools (cached); the servers built from Go modules build in the background"
# On a cold machine kube-apiserver + etcd, versitygw, Jaeger and actionlint are ~20 minutes of Go
# builds and module downloads: they overlap the Rust work below and are waited for before the
# suites that start them. Warm, each only checks its cached binary.
go_tools_log="$(mktemp -t tally-go-tools.XXXXXX)"
(scripts/tools/kube.sh && scripts/tools/versitygw.sh && scripts/tools/jaeger.sh && scripts/tools/actionlint.sh) \
  >"$go_tools_log" 2>&1 &
go_tools=$!
scripts/tools/python.sh
scripts/tools/redis.sh
scripts/tools/chromium.sh
scripts/tools/helm.sh
scripts/tools/cargo-tools.sh
scripts/tools/fuzz.sh
scripts/tools/images.sh

step "cargo fmt --check"
cargo fmt --all --check

step "dependency hygiene: cargo machete (declared but unused), cargo deny (licenses, bans, sources)"
# `cargo deny check advisories` needs the RustSec database from GitHub, which is
# not reachable here; the release workflow runs it.
"$TALLY_CACHE/bin/cargo-machete"
"$TALLY_CACHE/bin/cargo-deny" check --hide-inclusion-graph licenses bans sources

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz smoke: every fuzz target replays its regressions, then fuzzes 15 s (scripts/fuzz.sh, docs/fuzzing.md)"
# A finding fails the run at the end, after every other suite has run.
scripts/fuzz.sh --smoke 15 || fuzz_failed=1

step "building binaries the suites start (tally-extproc, tally, bedrock-sim)"
cargo build --workspace --bins --locked

step "building container images (scripts/images.sh: static musl binaries, buildah)"
scripts/images.sh

step "waiting for the Go-built test servers (kube-apiserver, etcd, versitygw, jaeger, actionlint)"
if ! wait "$go_tools"; then
  cat "$go_tools_log" >&2
  echo "building the Go test servers failed (log above)" >&2
  exit 1
fi
cat "$go_tools_log"
rm -f "$go_tools_log"

step "cargo test"
cargo test --workspace --locked --no-fail-fast -- --test-threads=2

[[ -z "${fuzz_failed:-}" ]] || { echo "the fuzz smoke found problems: see its step above" >&2; exit 1; }
