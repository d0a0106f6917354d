#!/usr/bin/env bash
# Installs actionlint (the GitHub Actions workflow linter, built from its Go module) into
# $TALLY_BIN/actionlint, and Debian's shellcheck, which actionlint runs on every `run:` script.
# Idempotent; prints nothing on success. Needs Go >= 1.24 and the Go module proxy.
source "$(dirname "$0")/lib.sh"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
STAMP="$TALLY_CACHE/.actionlint-stamp-$ACTIONLINT_VERSION"

find_go() {
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  if command -v go >/dev/null; then command -v go; return; fi
  echo "Go toolchain not found: install Go >= 1.24 (https://go.dev/dl or 'apt-get install golang-go' if recent enough)" >&2
  exit 1
}

install_actionlint() {
  if [[ -f "$STAMP" && -x "$TALLY_BIN/actionlint" ]]; then return 0; fi
  local go
  go="$(find_go)"
  log "building actionlint $ACTIONLINT_VERSION with $go"
  mkdir -p "$TALLY_CACHE/go/bin"
  GOBIN="$TALLY_CACHE/go/bin" GOPATH="$TALLY_CACHE/go/path" GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local \
    "$go" install -trimpath -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" \
    "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  ln -sf "$TALLY_CACHE/go/bin/actionlint" "$TALLY_BIN/actionlint"
  "$TALLY_BIN/actionlint" -version >/dev/null
  touch "$STAMP"
}

install_shellcheck() {
  if [[ -x "$TALLY_BIN/shellcheck" ]]; then return 0; fi
  if ! system_command shellcheck >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then echo "shellcheck missing: run 'sudo apt-get install -y shellcheck'" >&2; exit 1; fi
    log "installing shellcheck from Debian packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
  fi
  ln -sf "$(system_command shellcheck)" "$TALLY_BIN/shellcheck"
}

with_lock actionlint install_actionlint
with_lock apt install_shellcheck
