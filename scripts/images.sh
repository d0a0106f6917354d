#!/usr/bin/env bash
# Builds the two container images reproducibly — ghcr.io/tally-dev/tally-extproc and
# ghcr.io/tally-dev/tally-operator, tagged with the workspace version (= the chart's appVersion)
# — and, with --push, pushes them. Prints each image's ID, digest and size.
#
#   scripts/images.sh                                   # build both for this machine's arch
#   scripts/images.sh --push my-registry.example/tally  # … and push my-registry.example/tally/tally-{extproc,operator}:TAG
#   scripts/images.sh --tag 0.1.0-rc1                   # another tag (default: the workspace version)
#   scripts/images.sh --context-only DIR                # only the static binaries + build context, for
#                                                       # `docker buildx` (the release workflow)
#
# Steps: static musl binaries (`cargo build --release --target <arch>-unknown-linux-musl`, into
# $CARGO_TARGET_DIR, default $TALLY_CACHE/target), a build context staged under
# $TALLY_CACHE/images/context (images/rootfs, the Mozilla CA bundle from Debian's ca-certificates
# package, the binaries), then `buildah bud --isolation chroot` of images/Dockerfile, one --target
# per image. No FROM names a registry image, so building needs no registry.
#
# Reproducible: SOURCE_DATE_EPOCH (default: the commit time of HEAD) fixes the image's created
# time and every file's mtime (--timestamp), paths are remapped out of the binaries, and the
# build identity label is off, so the same commit on the same toolchain gives the same image IDs.
# A summary (refs, IDs, digests, sizes, seconds) is written to $TALLY_CACHE/images/images.json.
#
# Other options: --skip-binaries (reuse the staged binaries: rebuild only the images),
# --tls-verify=false (push to a plain-HTTP registry such as a local test one).
# Installs what it needs first (scripts/tools/images.sh: buildah, podman, runc, musl-tools, the
# Rust musl target); --context-only needs only musl-gcc and the Rust target.
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_CACHE="${TALLY_CACHE:-$HOME/.cache/tally}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TALLY_CACHE/target}"
source scripts/tools/lib.sh

IMAGE_PREFIX="ghcr.io/tally-dev"
IMAGES=(tally-extproc:extproc:tally-extproc tally-operator:operator:tally) # name:dockerfile-target:binary
PUSH="" TAG="" CONTEXT_ONLY="" SKIP_BINARIES=false TLS_VERIFY=true

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --push) PUSH="${2:?--push needs a registry, e.g. my-registry.example/tally}"; shift 2 ;;
    --push=*) PUSH="${1#*=}"; shift ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --tag=*) TAG="${1#*=}"; shift ;;
    --context-only) CONTEXT_ONLY="${2:?--context-only needs a directory}"; shift 2 ;;
    --skip-binaries) SKIP_BINARIES=true; shift ;;
    --tls-verify=false) TLS_VERIFY=false; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
PUSH="${PUSH%/}"

# The version every artefact carries: [workspace.package] version in Cargo.toml.
VERSION="$(awk '/^\[workspace\.package\]/{f=1;next} /^\[/{f=0} f && $1=="version" {gsub(/"/,"",$3); print $3; exit}' Cargo.toml)"
[[ -n "$VERSION" ]] || { echo "no [workspace.package] version in Cargo.toml" >&2; exit 1; }
TAG="${TAG:-$VERSION}"
if git rev-parse --git-dir >/dev/null 2>&1; then
  REVISION="$(git rev-parse HEAD)"
  git diff --quiet HEAD -- 2>/dev/null || REVISION="$REVISION-dirty"
  SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
else
  REVISION="unknown"
  SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
fi
export SOURCE_DATE_EPOCH
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"

case "$(uname -m)" in
  x86_64) ARCH=amd64 TRIPLE=x86_64-unknown-linux-musl ;;
  aarch64|arm64) ARCH=arm64 TRIPLE=aarch64-unknown-linux-musl ;;
  *) echo "unsupported architecture $(uname -m) (images are built for amd64 and arm64)" >&2; exit 1 ;;
esac

IMAGES_DIR="$TALLY_CACHE/images"
CONTEXT="${CONTEXT_ONLY:-$IMAGES_DIR/context}"
mkdir -p "$IMAGES_DIR" "$CONTEXT"

build_binaries() {
  command -v musl-gcc >/dev/null || { echo "musl-gcc not found: run scripts/tools/images.sh (Debian package musl-tools)" >&2; exit 1; }
  rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE" \
    || { echo "Rust target $TRIPLE missing: run 'rustup target add $TRIPLE'" >&2; exit 1; }
  local triple_env="${TRIPLE//-/_}"
  # aws-lc-sys compiles C: musl-gcc builds it against musl's headers. Stripped, no debug info
  # (the images carry no debugger). Paths of the cargo home and the target dir are remapped
  # so the binaries do not depend on where they were built; workspace sources are already
  # relative. Only the musl target's flags change, so the host build's cache is untouched.
  env "CC_$triple_env=musl-gcc" \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols \
    "CARGO_TARGET_${triple_env^^}_RUSTFLAGS=--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$CARGO_TARGET_DIR=/target" \
    cargo build --release --locked --target "$TRIPLE" \
      -p tally-extproc -p tally-operator --bin tally-extproc --bin tally
}

# The Mozilla CA bundle from Debian's ca-certificates package, the way update-ca-certificates
# writes it (every certificate under mozilla/, in name order). The .deb is cached per version.
ca_bundle() {
  local out="$1" dir="$IMAGES_DIR/ca-certificates" version deb work
  mkdir -p "$dir"
  version="$(apt-cache policy ca-certificates 2>/dev/null | awk '/Candidate:/ {print $2}')"
  deb="$(ls "$dir"/ca-certificates_"${version//:/%3a}"_all.deb 2>/dev/null || true)"
  if [[ -z "$deb" || "$version" == "(none)" || -z "$version" ]]; then
    (cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root ca-certificates) \
      || { echo "could not download Debian's ca-certificates package (apt-get download ca-certificates)" >&2; exit 1; }
    deb="$(ls -t "$dir"/ca-certificates_*_all.deb | head -1)"
  fi
  work="$(mktemp -d)"
  dpkg-deb -x "$deb" "$work"
  find "$work/usr/share/ca-certificates/mozilla" -name '*.crt' -print0 | LC_ALL=C sort -z \
    | xargs -0 cat >"$out"
  rm -rf "$work"
  grep -c 'BEGIN CERTIFICATE' "$out" >/dev/null || { echo "empty CA bundle from $deb" >&2; exit 1; }
  basename "$deb" >"$IMAGES_DIR/ca-certificates.version"
}

# Stages the build context: rootfs/ (passwd, group, CA bundle, /var/lib/tally), state/spool/, bin/linux-$ARCH/.
stage_context() {
  local bin_dir="$CONTEXT/bin/linux-$ARCH" target_dir="$CARGO_TARGET_DIR/$TRIPLE/release"
  rm -rf "$CONTEXT/rootfs" "$CONTEXT/state"
  mkdir -p "$CONTEXT/rootfs/etc/ssl/certs" "$CONTEXT/rootfs/var/lib/tally" "$CONTEXT/state/spool" "$bin_dir"
  install -m 0644 images/rootfs/etc/passwd images/rootfs/etc/group "$CONTEXT/rootfs/etc/"
  ca_bundle "$CONTEXT/rootfs/etc/ssl/certs/ca-certificates.crt"
  chmod 0644 "$CONTEXT/rootfs/etc/ssl/certs/ca-certificates.crt"
  chmod 0755 "$CONTEXT/rootfs" "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/etc/ssl" "$CONTEXT/rootfs/etc/ssl/certs" \
    "$CONTEXT/rootfs/var" "$CONTEXT/rootfs/var/lib" "$CONTEXT/rootfs/var/lib/tally" "$CONTEXT/state"
  chmod 0700 "$CONTEXT/state/spool"
  if [[ "$SKIP_BINARIES" == false ]]; then
    for spec in "${IMAGES[@]}"; do
      local bin="${spec##*:}"
      install -m 0755 "$target_dir/$bin" "$bin_dir/$bin"
    done
  fi
  for spec in "${IMAGES[@]}"; do
    local bin="${spec##*:}"
    [[ -x "$bin_dir/$bin" ]] || { echo "$bin_dir/$bin missing: run scripts/images.sh without --skip-binaries" >&2; exit 1; }
    # A static binary has no program interpreter; the empty base has no libc to load.
    if readelf -lW "$bin_dir/$bin" | grep -q 'Requesting program interpreter'; then
      echo "$bin_dir/$bin is dynamically linked; the images need static musl binaries" >&2; exit 1
    fi
  done
  find "$CONTEXT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

build_images() {
  local entries=() spec name target ref old id digest size pushed
  for spec in "${IMAGES[@]}"; do
    IFS=: read -r name target _ <<<"$spec"
    ref="$IMAGE_PREFIX/$name:$TAG"
    old="$("$TALLY_BIN/podman" image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
    "$TALLY_BIN/buildah" bud --quiet --isolation chroot --format oci --layers=false \
      --identity-label=false --timestamp "$SOURCE_DATE_EPOCH" --platform "linux/$ARCH" \
      --build-arg "TARGETARCH=$ARCH" --build-arg "VERSION=$VERSION" \
      --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
      --target "$target" -f images/Dockerfile -t "$ref" \
      --iidfile "$IMAGES_DIR/$name.iid" "$CONTEXT" >/dev/null
    id="$(cat "$IMAGES_DIR/$name.iid")"
    # The image this tag named before, if different and no longer used, would only take space.
    if [[ -n "$old" && "sha256:$old" != "$id" && "$old" != "$id" ]]; then
      "$TALLY_BIN/podman" rmi "$old" >/dev/null 2>&1 || true
    fi
    digest="$("$TALLY_BIN/podman" image inspect --format '{{.Digest}}' "$ref")"
    size="$("$TALLY_BIN/podman" image inspect --format '{{.Size}}' "$ref")"
    pushed=""
    if [[ -n "$PUSH" ]]; then
      local dest="$PUSH/$name:$TAG"
      "$TALLY_BIN/buildah" push --quiet --tls-verify="$TLS_VERIFY" \
        --digestfile "$IMAGES_DIR/$name.pushed-digest" "$ref" "docker://$dest" >/dev/null
      pushed="$dest@$(cat "$IMAGES_DIR/$name.pushed-digest")"
    fi
    printf '%-44s id %s  digest %s  %s MiB\n' "$ref" "${id#sha256:}" "$digest" \
      "$(awk -v b="$size" 'BEGIN {printf "%.1f", b / 1048576}')"
    [[ -z "$pushed" ]] || printf '  pushed %s\n' "$pushed"
    entries+=("$(printf '{"name": "%s", "ref": "%s", "id": "%s", "digest": "%s", "sizeBytes": %s, "pushed": "%s"}' \
      "$name" "$(json_escape "$ref")" "$id" "$digest" "$size" "$(json_escape "$pushed")")")
  done
  local IFS=,
  printf '{"version": "%s", "tag": "%s", "revision": "%s", "sourceDateEpoch": %s, "platform": "linux/%s", "caCertificates": "%s", "binarySeconds": %s, "imageSeconds": %s, "images": [%s]}\n' \
    "$VERSION" "$(json_escape "$TAG")" "$REVISION" "$SOURCE_DATE_EPOCH" "$ARCH" \
    "$(cat "$IMAGES_DIR/ca-certificates.version")" "$BINARY_SECONDS" "$(( SECONDS - IMAGE_START ))" \
    "${entries[*]}" >"$IMAGES_DIR/images.json"
}

main() {
  if [[ -z "$CONTEXT_ONLY" ]]; then
    scripts/tools/images.sh
  fi
  local start=$SECONDS
  if [[ "$SKIP_BINARIES" == false ]]; then
    build_binaries
  fi
  BINARY_SECONDS=$(( SECONDS - start ))
  IMAGE_START=$SECONDS
  stage_context
  if [[ -n "$CONTEXT_ONLY" ]]; then
    log "build context for linux/$ARCH staged in $CONTEXT (binaries: ${BINARY_SECONDS}s)"
    return 0
  fi
  build_images
  log "images built in $(( SECONDS - start ))s (binaries ${BINARY_SECONDS}s, images $(( SECONDS - IMAGE_START ))s); summary in $IMAGES_DIR/images.json"
}

# One build at a time per cache: the staged context and the tags are shared.
with_lock images-build main
