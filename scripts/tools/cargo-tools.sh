#!/usr/bin/env bash
# Installs the workspace's hygiene checkers from crates.io into $TALLY_BIN (cached):
# cargo-machete (dependencies declared but unused) and cargo-deny (licenses, bans, sources).
source "$(dirname "$0")/lib.sh"
MACHETE_VERSION=0.9.2
DENY_VERSION=0.20.2
install_one() { # NAME VERSION
  local name="$1" version="$2" stamp="$TALLY_CACHE/$1-$2.installed"
  [[ -x "$TALLY_BIN/$name" && -f "$stamp" ]] && return 0
  log "building $name $version from crates.io (once)"
  cargo install --locked --quiet --root "$TALLY_CACHE/cargo-tools" --version "$version" "$name"
  ln -sf "$TALLY_CACHE/cargo-tools/bin/$name" "$TALLY_BIN/$name"
  touch "$stamp"
}
install() {
  install_one cargo-machete "$MACHETE_VERSION"
  install_one cargo-deny "$DENY_VERSION"
}
with_lock cargo-tools install
