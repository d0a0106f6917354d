#!/usr/bin/env bash
# Installs the LiteLLM proxy (PyPI `litellm[proxy]`), the peer the benchmarks in
# bench/ compare Tally against, into its own venv (~750 MB, ~1 min). Idempotent.
# Links `litellm` into $TALLY_BIN; prints nothing on success.
source "$(dirname "$0")/lib.sh"
VENV="$TALLY_CACHE/litellm-venv"
PKGS=("litellm[proxy]" "redis")
STAMP="$VENV/.tally-stamp-v1"

install() {
  [[ -f "$STAMP" ]] && return 0
  log "creating $VENV with ${PKGS[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}"
  ln -sf "$VENV/bin/litellm" "$TALLY_BIN/litellm"
  LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" -c 'import litellm.proxy.proxy_server' >/dev/null
  touch "$STAMP"
}
with_lock litellm install
