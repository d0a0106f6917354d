#!/usr/bin/env bash
# Runs Tally's fuzz targets (fuzz/: cargo-fuzz + libFuzzer, on nightly).
#
#   scripts/fuzz.sh --list              the targets
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER_ARGS…]
#                                       fuzz one target (default 60 s); e.g. `-fork=1 -ignore_crashes=1`
#                                       keeps going after a finding, to collect several
#   scripts/fuzz.sh --smoke [SECONDS]   every target briefly (default 15 s each): the test command's step
#
# Each run first replays the target's committed inputs (fuzz/seeds/TARGET and the
# minimised findings in fuzz/regressions/TARGET), then fuzzes. The growing corpus
# lives in $TALLY_CACHE/fuzz-corpus/TARGET and the build in $TALLY_CACHE/fuzz-target,
# outside the clone, so a fresh clone reuses both. A finding fails the run; its
# input is written to fuzz/artifacts/TARGET/ and the `cargo fuzz run` line that
# replays it is printed. docs/fuzzing.md says what each target asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_CACHE="${TALLY_CACHE:-$HOME/.cache/tally}"
export RUSTUP_TOOLCHAIN="${TALLY_FUZZ_TOOLCHAIN:-nightly}"
FUZZ_TARGET_DIR="$TALLY_CACHE/fuzz-target"
CORPUS="$TALLY_CACHE/fuzz-corpus"

targets() { grep -A1 '^\[\[bin\]\]' fuzz/Cargo.toml | sed -n 's/^name = "\(.*\)"$/\1/p'; }

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

cargo_fuzz() {
  local bin="$TALLY_CACHE/bin/cargo-fuzz"
  [[ -x "$bin" ]] || { echo "cargo-fuzz is missing: run scripts/tools/fuzz.sh (installs nightly and cargo-fuzz, cached)" >&2; exit 1; }
  rustup run "$RUSTUP_TOOLCHAIN" rustc --version >/dev/null 2>&1 \
    || { echo "Rust $RUSTUP_TOOLCHAIN is missing: run scripts/tools/fuzz.sh" >&2; exit 1; }
  # --sanitizer none: Tally forbids unsafe code, so AddressSanitizer would mostly
  # halve the executions; debug assertions (overflow checks) stay on.
  (cd fuzz && nice "$bin" "$1" --sanitizer none --fuzz-dir . --target-dir "$FUZZ_TARGET_DIR" "${@:2}")
}

build() { cargo_fuzz build; }

# run TARGET SECONDS [ARGS…] — fuzz TARGET for SECONDS, printing libFuzzer's final stats.
run() {
  local target="$1" seconds="$2"; shift 2
  targets | grep -qx "$target" || { echo "no fuzz target '$target' (scripts/fuzz.sh --list)" >&2; exit 2; }
  local corpus="$CORPUS/$target" seeds="$PWD/fuzz/seeds/$target" regressions="$PWD/fuzz/regressions/$target"
  mkdir -p "$corpus" "$seeds" "$regressions"
  echo "--- fuzzing $target for ${seconds}s (corpus $corpus)"
  cargo_fuzz run "$target" "$corpus" "$seeds" "$regressions" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$PWD/fuzz/artifacts/$target/" "$@" 2> >(grep --line-buffered -Ev '^#[0-9]+\s+(NEW|REDUCE|pulse)' >&2)
}

mkdir -p fuzz/artifacts
case "${1:-}" in
  --list) targets ;;
  --smoke)
    seconds="${2:-15}"
    build
    # Every target runs even after one finds something, so one run shows all findings.
    failed=()
    for t in $(targets); do
      mkdir -p "fuzz/artifacts/$t"
      run "$t" "$seconds" || failed+=("$t")
    done
    if (( ${#failed[@]} )); then
      echo "fuzz smoke: findings in ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
      exit 1
    fi ;;
  ""|-h|--help) usage ;;
  *)
    mkdir -p "fuzz/artifacts/$1"
    build
    run "$1" "${2:-60}" "${@:3}" ;;
esac
