# Shared by the tool installers: where cached tools live, and a lock so that
# parallel installs (two test binaries, two shells) never race.
# Everything lands under $TALLY_CACHE (default ~/.cache/tally), outside the clone,
# so a fresh clone reuses what an earlier run installed.
set -euo pipefail
TALLY_CACHE="${TALLY_CACHE:-$HOME/.cache/tally}"
TALLY_BIN="$TALLY_CACHE/bin"
mkdir -p "$TALLY_BIN"

# with_lock NAME CMD... — run CMD holding an exclusive lock on $TALLY_CACHE/NAME.lock
with_lock() {
  local name="$1"; shift
  exec {lockfd}>"$TALLY_CACHE/$name.lock"
  flock "$lockfd"
  "$@"
  flock -u "$lockfd"
}

log() { echo "[tools] $*" >&2; }
