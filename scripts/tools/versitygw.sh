#!/usr/bin/env bash
# Builds the Versity S3 Gateway (`versitygw`, a real S3 server; its `posix` backend stores buckets
# as directories) from its Go module and caches it at $TALLY_BIN/versitygw; the ledger-export
# suite stores its Parquet files in it. Idempotent: when the pinned build exists it does nothing.
# Only the Go module proxy is used.
#
#   scripts/tools/versitygw.sh
#   VERSITYGW_VERSION=v1.8.0 scripts/tools/versitygw.sh   # another release (rebuilds)
#
# Chosen over SeaweedFS (`weed server -s3`, also built and tried): on this 2-core machine the cold
# build of versitygw took 4 min (1 m 53 s CPU) against SeaweedFS's 10 min (7 m 29 s CPU, ~500
# modules, a 164 MB binary), and it runs as one process on one port. Module and build caches
# live under $TALLY_CACHE/go.
source "$(dirname "$0")/lib.sh"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"

find_go() {
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  if command -v go >/dev/null; then command -v go; return; fi
  echo "Go toolchain not found: install Go >= 1.25 (https://go.dev/dl), needed to build versitygw" >&2
  exit 1
}

install() {
  local have
  have=$(cat "$TALLY_BIN/versitygw.version" 2>/dev/null || true)
  if [[ -x "$TALLY_BIN/versitygw" && "$have" == "$VERSITYGW_VERSION" ]]; then return 0; fi
  local go
  go="$(find_go)"
  log "building versitygw $VERSITYGW_VERSION with $go (first build takes a few minutes)"
  mkdir -p "$TALLY_CACHE/go/bin"
  GOBIN="$TALLY_CACHE/go/bin" GOPATH="$TALLY_CACHE/go/path" GOCACHE="$TALLY_CACHE/go/cache" \
    GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local \
    "$go" install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  ln -sf "$TALLY_CACHE/go/bin/versitygw" "$TALLY_BIN/versitygw"
  "$TALLY_BIN/versitygw" --version >/dev/null
  echo "$VERSITYGW_VERSION" >"$TALLY_BIN/versitygw.version"
}
with_lock versitygw install
