#!/usr/bin/env bash
# Builds kube-apiserver and etcd from Go modules (no GitHub downloads: only the Go module proxy)
# and caches them in $TALLY_BIN. Idempotent: when both binaries exist it only reports their versions.
#
#   scripts/tools/kube.sh            # build if missing
#   KUBE_VERSION=1.35.4 scripts/tools/kube.sh   # pick another release (rebuilds if the cached one differs)
#
# Needs Go >= 1.24 (default /usr/local/go/bin/go, or `go` on PATH). The Go module and build caches stay
# at their defaults (~/go/pkg/mod, ~/.cache/go-build) so a rebuild after an upgrade is incremental.
# kube-apiserver: a scratch module `require`s k8s.io/kubernetes vX.Y.Z and `replace`s every staging
# module (k8s.io/api, apimachinery, ...) listed in that release's go.mod with its published v0.Y.Z
# (kubernetes/kubernetes#79384). etcd: a scratch module whose main calls etcdmain.Main(os.Args).
source "$(dirname "$0")/lib.sh"

KUBE_VERSION="${KUBE_VERSION:-1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

find_go() {
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  if command -v go >/dev/null; then command -v go; return; fi
  echo "Go toolchain not found: install Go >= 1.24 (https://go.dev/dl or 'apt-get install golang-go' if recent enough)" >&2
  exit 1
}

export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

build_apiserver() {
  local go="$1" dir="$TALLY_CACHE/build/kube-apiserver-$KUBE_VERSION"
  local minor="0.${KUBE_VERSION#1.}"
  rm -rf "$dir" && mkdir -p "$dir"
  log "building kube-apiserver v$KUBE_VERSION in $dir (first build takes several minutes)"
  # The release's go.mod, fetched through the module proxy, lists the staging modules to replace.
  local gomod
  gomod=$(cd "$dir" && "$go" mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "could not download go.mod of k8s.io/kubernetes@v$KUBE_VERSION" >&2; exit 1; }
  local goline
  goline=$(grep -m1 '^go ' "$gomod")
  {
    echo "module tally.local/kube-apiserver"
    echo
    echo "$goline"
    echo
    echo "require k8s.io/kubernetes v$KUBE_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s\.io/[A-Za-z0-9._/-]+ => \./staging/src/' "$gomod" | awk -v v="v$minor" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$dir/go.mod"
  cat >"$dir/main.go" <<'EOF'
// Package main re-exports the kube-apiserver command from k8s.io/kubernetes.
package main

import (
	"os"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
EOF
  (cd "$dir" && "$go" mod tidy && "$go" build -trimpath -o "$TALLY_BIN/kube-apiserver.tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor#0.} -X k8s.io/client-go/pkg/version.gitVersion=v$KUBE_VERSION" .)
  mv "$TALLY_BIN/kube-apiserver.tmp" "$TALLY_BIN/kube-apiserver"
  echo "$KUBE_VERSION" >"$TALLY_BIN/kube-apiserver.version"
}

build_etcd() {
  local go="$1" dir="$TALLY_CACHE/build/etcd-$ETCD_VERSION"
  rm -rf "$dir" && mkdir -p "$dir"
  log "building etcd v$ETCD_VERSION in $dir"
  cat >"$dir/go.mod" <<EOF
module tally.local/etcd

go 1.24

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
EOF
  cat >"$dir/main.go" <<'EOF'
// Package main runs the etcd server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$dir" && "$go" mod tidy && "$go" build -trimpath -ldflags "-s -w" -o "$TALLY_BIN/etcd.tmp" .)
  mv "$TALLY_BIN/etcd.tmp" "$TALLY_BIN/etcd"
  echo "$ETCD_VERSION" >"$TALLY_BIN/etcd.version"
}

install() {
  local have_api have_etcd go=""
  have_api=$(cat "$TALLY_BIN/kube-apiserver.version" 2>/dev/null || true)
  have_etcd=$(cat "$TALLY_BIN/etcd.version" 2>/dev/null || true)
  if [[ ! -x "$TALLY_BIN/kube-apiserver" || "$have_api" != "$KUBE_VERSION" ]]; then
    go=$(find_go); build_apiserver "$go"
  fi
  if [[ ! -x "$TALLY_BIN/etcd" || "$have_etcd" != "$ETCD_VERSION" ]]; then
    [[ -n "$go" ]] || go=$(find_go)
    build_etcd "$go"
  fi
  log "kube-apiserver: $("$TALLY_BIN/kube-apiserver" --version 2>&1 | head -1) at $TALLY_BIN/kube-apiserver"
  log "etcd: $("$TALLY_BIN/etcd" --version 2>&1 | head -1) at $TALLY_BIN/etcd"
}
with_lock kube install
