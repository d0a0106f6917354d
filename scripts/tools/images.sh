#!/usr/bin/env bash
# Installs what building and running the container images needs, idempotently:
#   - Debian's buildah, podman, skopeo, runc (not crun), conmon and musl-tools (musl-gcc,
#     for the C code of aws-lc-sys in the static binaries);
#   - the Rust target x86_64-unknown-linux-musl;
#   - $TALLY_CACHE/containers/containers.conf: runc, cgroupfs, file events (no systemd here),
#     and default_ulimits inside this machine's hard limits — without that override every
#     `podman run` fails with `setrlimit ... Operation not permitted`;
#   - wrappers $TALLY_BIN/{podman,buildah,skopeo} that run the Debian binaries with
#     CONTAINERS_CONF pointing at that file (what scripts/images.sh and the tests call);
#   - a container registry binary (Debian's docker-registry, extracted, never installed as
#     a service) at $TALLY_BIN/registry, which the image suite runs on loopback to test `--push`.
# Prints nothing on success.
source "$(dirname "$0")/lib.sh"

CONF_DIR="$TALLY_CACHE/containers"
CONF="$CONF_DIR/containers.conf"
MUSL_TARGET="${MUSL_TARGET:-x86_64-unknown-linux-musl}"
PKGS=(buildah podman skopeo runc conmon netavark musl-tools)

install_packages() {
  local missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]}: run 'sudo apt-get install -y --no-install-recommends ${missing[*]}'" >&2
    exit 1
  fi
  log "installing ${missing[*]} from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # runc is named so that apt does not pick crun for podman's `crun | runc`.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
}

# The registry binary only: no package install, so no service is set up or started.
install_registry() {
  [[ -x "$TALLY_BIN/registry" ]] && return 0
  local work
  work="$(mktemp -d)"
  log "extracting the registry binary from Debian's docker-registry package"
  (cd "$work" && apt-get download -qq docker-registry 2>/dev/null) || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    (cd "$work" && apt-get download -qq docker-registry)
  }
  dpkg-deb -x "$work"/docker-registry_*.deb "$work/root"
  install -m 0755 "$work/root/usr/bin/docker-registry" "$TALLY_BIN/registry"
  rm -rf "$work"
}

install_musl_target() {
  rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET" && return 0
  log "adding the Rust target $MUSL_TARGET"
  rustup target add "$MUSL_TARGET" >/dev/null
}

write_conf() {
  # podman applies default_ulimits to every container: keep them within the hard limits
  # this process may raise to (nproc also capped at 32768, as the brief of issue 14 says).
  local hard_nofile hard_nproc nofile nproc
  hard_nofile="$(ulimit -Hn)"
  hard_nproc="$(ulimit -Hu)"
  nofile=65536
  [[ "$hard_nofile" != unlimited && "$hard_nofile" -lt "$nofile" ]] && nofile="$hard_nofile"
  nproc=32768
  [[ "$hard_nproc" != unlimited && "$hard_nproc" -lt "$nproc" ]] && nproc="$hard_nproc"
  mkdir -p "$CONF_DIR"
  local want
  want="$(cat <<EOF
# Written by scripts/tools/images.sh; used through CONTAINERS_CONF (the \$TALLY_BIN wrappers set it).
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
# No systemd on this machine: cgroupfs and file-based events.
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
)"
  if [[ "$(cat "$CONF" 2>/dev/null)" != "$want" ]]; then
    printf '%s\n' "$want" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  fi
}

write_wrappers() {
  local tool want
  for tool in podman buildah skopeo; do
    want="#!/bin/sh
# Written by scripts/tools/images.sh: $tool with the project's containers.conf.
CONTAINERS_CONF=\"\${CONTAINERS_CONF:-$CONF}\" exec /usr/bin/$tool \"\$@\""
    if [[ "$(cat "$TALLY_BIN/$tool" 2>/dev/null)" != "$want" ]]; then
      printf '%s\n' "$want" >"$TALLY_BIN/$tool.tmp"
      chmod 0755 "$TALLY_BIN/$tool.tmp"
      mv "$TALLY_BIN/$tool.tmp" "$TALLY_BIN/$tool"
    fi
  done
}

with_lock apt install_packages
with_lock apt install_registry
with_lock rustup install_musl_target
with_lock images write_conf
with_lock images write_wrappers
