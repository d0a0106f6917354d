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

# system_command NAME — NAME's path on PATH outside $TALLY_BIN, or status 1. Linking a tool
# found through $TALLY_BIN (when it is on PATH, as bench/run.sh users often have it) into
# $TALLY_BIN would make the link point at itself.
system_command() {
  local dir own
  own="$(cd "$TALLY_BIN" && pwd -P)"
  local IFS=:
  for dir in $PATH; do
    [[ -n "$dir" && -d "$dir" ]] || continue
    [[ "$(cd "$dir" && pwd -P)" == "$own" ]] && continue
    if [[ -x "$dir/$1" && ! -d "$dir/$1" ]]; then echo "$dir/$1"; return 0; fi
  done
  return 1
}
