#!/usr/bin/env bash
# Installs what the fuzz targets (fuzz/, scripts/fuzz.sh) need, cached: the
# nightly Rust toolchain (cargo-fuzz builds with -Z sanitizer-coverage flags)
# and cargo-fuzz from crates.io into $TALLY_BIN.
# TALLY_FUZZ_TOOLCHAIN picks another toolchain (a dated nightly, say).
source "$(dirname "$0")/lib.sh"
CARGO_FUZZ_VERSION=0.13.2
TOOLCHAIN="${TALLY_FUZZ_TOOLCHAIN:-nightly}"
install_toolchain() {
  command -v rustup >/dev/null || { echo "rustup is missing: the fuzz targets need it to get a nightly toolchain (https://rustup.rs)" >&2; exit 1; }
  rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1 && return 0
  log "installing Rust $TOOLCHAIN (minimal profile, once)"
  rustup toolchain install "$TOOLCHAIN" --profile minimal
}
install_cargo_fuzz() {
  local stamp="$TALLY_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION.installed"
  [[ -x "$TALLY_BIN/cargo-fuzz" && -f "$stamp" ]] && return 0
  log "building cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (once)"
  cargo install --locked --quiet --root "$TALLY_CACHE/cargo-tools" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
  ln -sf "$TALLY_CACHE/cargo-tools/bin/cargo-fuzz" "$TALLY_BIN/cargo-fuzz"
  touch "$stamp"
}
with_lock rustup install_toolchain
with_lock cargo-tools install_cargo_fuzz
