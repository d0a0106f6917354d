#!/usr/bin/env bash
# Installs redis-server (Debian package) unless one is already on PATH; links it into $TALLY_BIN.
source "$(dirname "$0")/lib.sh"
install() {
  if ! system_command redis-server >/dev/null; then
    log "installing redis-server from Debian packages"
    if [[ $(id -u) -ne 0 ]]; then echo "redis-server missing: run 'sudo apt-get install -y redis-server'" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  ln -sf "$(system_command redis-server)" "$TALLY_BIN/redis-server"
  ln -sf "$(system_command redis-cli)" "$TALLY_BIN/redis-cli"
}
with_lock apt install
