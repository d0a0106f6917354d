#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (a real S3-compatible server: `weed server -s3`) from its Go module and
# caches it at $TALLY_BIN/weed; the ledger-export suite stores its Parquet files in it.
# Idempotent: when the pinned build exists it does nothing. Only the Go module proxy is used.
#
#   scripts/tools/seaweedfs.sh
#   SEAWEEDFS_VERSION=v0.0.0-… scripts/tools/seaweedfs.sh   # another commit (rebuilds)
#
# SeaweedFS tags its releases without a `v` (e.g. `3.99`), so the module proxy serves commits as
# pseudo-versions only; the pin below is one such commit. Its go.mod carries a `replace`, which
# `go install pkg@version` refuses, so a scratch module requires it, repeats the replace and builds
# `github.com/seaweedfs/seaweedfs/weed`. Module and build caches live under $TALLY_CACHE/go.
source "$(dirname "$0")/lib.sh"
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"

find_go() {
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  if command -v go >/dev/null; then command -v go; return; fi
  echo "Go toolchain not found: install Go >= 1.26 (https://go.dev/dl), needed to build SeaweedFS" >&2
  exit 1
}

build() {
  local go="$1" dir="$TALLY_CACHE/build/seaweedfs-$SEAWEEDFS_VERSION"
  rm -rf "$dir" && mkdir -p "$dir"
  log "building SeaweedFS weed $SEAWEEDFS_VERSION in $dir (first build takes a few minutes)"
  export GOPATH="$TALLY_CACHE/go/path" GOCACHE="$TALLY_CACHE/go/cache" GOFLAGS="-mod=mod -modcacherw" \
    CGO_ENABLED=0 GOTOOLCHAIN=local
  local gomod
  gomod=$(cd "$dir" && "$go" mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" |
    sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "could not download go.mod of seaweedfs@$SEAWEEDFS_VERSION" >&2; exit 1; }
  {
    echo "module tally.local/seaweedfs"
    echo
    grep -m1 '^go ' "$gomod"
    echo
    echo "require github.com/seaweedfs/seaweedfs $SEAWEEDFS_VERSION"
    grep -E '^replace ' "$gomod" || true
  } >"$dir/go.mod"
  (cd "$dir" && "$go" get "github.com/seaweedfs/seaweedfs/weed@$SEAWEEDFS_VERSION" &&
    "$go" build -trimpath -ldflags "-s -w" -o "$TALLY_BIN/weed.tmp" github.com/seaweedfs/seaweedfs/weed)
  mv "$TALLY_BIN/weed.tmp" "$TALLY_BIN/weed"
  echo "$SEAWEEDFS_VERSION" >"$TALLY_BIN/weed.version"
}

install() {
  local have
  have=$(cat "$TALLY_BIN/weed.version" 2>/dev/null || true)
  if [[ ! -x "$TALLY_BIN/weed" || "$have" != "$SEAWEEDFS_VERSION" ]]; then
    build "$(find_go)"
    log "weed: $("$TALLY_BIN/weed" version 2>&1 | head -1) at $TALLY_BIN/weed"
  fi
}
with_lock seaweedfs install
