#!/usr/bin/env bash
# Builds Jaeger v2 (`jaeger`, an OpenTelemetry-Collector-based trace backend: OTLP gRPC + HTTP
# receivers, in-memory storage, the query API) from its Go module and caches it at
# $TALLY_BIN/jaeger; the tracing suite sends the ext_proc's spans to it and reads them back.
# Idempotent: when the pinned build exists it does nothing. Only the Go module proxy is used.
#
#   scripts/tools/jaeger.sh
#   JAEGER_VERSION=v1.75.0 scripts/tools/jaeger.sh   # another release (rebuilds)
#
# `go install pkg@version` refuses a module whose go.mod has replace directives, so the tool is
# added to a scratch module (`go get -tool`) under $TALLY_CACHE/go/jaeger-mod and built there.
# Module and build caches live under $TALLY_CACHE/go, shared with the other Go tools.
#
# Cold cost on this 2-core machine (shared with other builds, load 5-7): with empty module and
# build caches 10 min 44 s wall, 385 s user + 74 s system CPU (1.3 GB of modules, 1.6 GB of build
# cache, an 85 MB binary); with versitygw's modules and build cache already there 6 min 27 s wall,
# 351 s + 71 s CPU. Cached runs cost nothing (the version stamp matches).
source "$(dirname "$0")/lib.sh"
JAEGER_VERSION="${JAEGER_VERSION:-v1.75.0}"

find_go() {
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  if command -v go >/dev/null; then command -v go; return; fi
  echo "Go toolchain not found: install Go >= 1.25 (https://go.dev/dl), needed to build jaeger" >&2
  exit 1
}

install() {
  local have
  have=$(cat "$TALLY_BIN/jaeger.version" 2>/dev/null || true)
  if [[ -x "$TALLY_BIN/jaeger" && "$have" == "$JAEGER_VERSION" ]]; then return 0; fi
  local go mod="$TALLY_CACHE/go/jaeger-mod"
  go="$(find_go)"
  log "building jaeger $JAEGER_VERSION with $go (first build takes several minutes)"
  rm -rf "$mod" && mkdir -p "$mod" "$TALLY_CACHE/go/bin"
  (
    cd "$mod" || exit 1
    export GOPATH="$TALLY_CACHE/go/path" GOCACHE="$TALLY_CACHE/go/cache" \
      GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local
    "$go" mod init tally.local/jaeger-tool >/dev/null 2>&1
    "$go" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    "$go" build -trimpath -ldflags "-s -w" -o "$TALLY_CACHE/go/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  ln -sf "$TALLY_CACHE/go/bin/jaeger" "$TALLY_BIN/jaeger"
  "$TALLY_BIN/jaeger" version >/dev/null
  echo "$JAEGER_VERSION" >"$TALLY_BIN/jaeger.version"
}
with_lock jaeger install
