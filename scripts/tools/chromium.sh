#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) unless one is already on PATH;
# links it into $TALLY_BIN. The audit suite renders `tally audit --format html` with it.
source "$(dirname "$0")/lib.sh"
install() {
  if ! system_command chromium >/dev/null; then
    log "installing chromium from Debian packages"
    if [[ $(id -u) -ne 0 ]]; then echo "chromium missing: run 'sudo apt-get install -y chromium'" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  ln -sf "$(system_command chromium)" "$TALLY_BIN/chromium"
}
with_lock apt install
