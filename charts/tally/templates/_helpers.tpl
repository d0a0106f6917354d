{{/*
Names, labels and the values derived from several settings. Templates use these
helpers instead of recomputing names, so that every reference to an object
(Service DNS names, ConfigMap and ServiceAccount names) agrees.
*/}}

{{- define "tally.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tally.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: tally.componentName (list $ "extproc"). */}}
{{- define "tally.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "tally.fullname" $root | trunc 45 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "tally.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tally.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tally
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: tally.componentLabels (list $ "extproc"). */}}
{{- define "tally.componentLabels" -}}
{{ include "tally.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Selector labels of one component: stable across upgrades, never add to them. */}}
{{- define "tally.selectorLabels" -}}
{{- $root := index . 0 }}
app.kubernetes.io/name: {{ include "tally.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* An image reference: tally.image (list $ .Values.extproc.image). Tag defaults to appVersion; a digest wins. */}}
{{- define "tally.image" -}}
{{- $root := index . 0 }}
{{- $image := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "tally.configMapName" -}}
{{- default (printf "%s-config" (include "tally.fullname" .)) .Values.config.configMapName }}
{{- end }}

{{- define "tally.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "tally.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tally.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "tally.componentName" (list . "gateway")) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Bedrock runtime endpoint of gateway.region. */}}
{{- define "tally.bedrockHost" -}}
{{- printf "bedrock-runtime.%s.amazonaws.com" .Values.gateway.region }}
{{- end }}

{{/* DNS name of a Service of this release: tally.serviceDNS (list $ "extproc"). */}}
{{- define "tally.serviceDNS" -}}
{{- $root := index . 0 }}
{{- printf "%s.%s.svc.%s" (include "tally.componentName" .) $root.Release.Namespace $root.Values.clusterDomain }}
{{- end }}

{{/* Pod-level security context: the chart-wide one plus a component's user. tally.podSecurityContext (list $ 65532). */}}
{{- define "tally.podSecurityContext" -}}
{{- $root := index . 0 }}
{{- $ctx := deepCopy $root.Values.podSecurityContext }}
{{- $_ := set $ctx "runAsUser" (index . 1) }}
{{- $_ := set $ctx "runAsGroup" (index . 1) }}
{{- $_ := set $ctx "fsGroup" (index . 1) }}
{{- toYaml $ctx }}
{{- end }}

{{- define "tally.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{- define "tally.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Region the ext_proc assumes when a call's host names none. */}}
{{- define "tally.extproc.defaultRegion" -}}
{{- default .Values.gateway.region .Values.extproc.defaultRegion }}
{{- end }}

{{/*
A duration from values ("500ms", "5s", "5m", "1h") in the protobuf JSON form Envoy
parses ("0.500s"). values.schema.json restricts durations to that syntax.
*/}}
{{- define "tally.envoyDuration" -}}
{{- $d := toString . }}
{{- if hasSuffix "ms" $d }}
{{- $ms := trimSuffix "ms" $d | int64 }}
{{- printf "%d.%03ds" (div $ms 1000) (mod $ms 1000) }}
{{- else if hasSuffix "s" $d }}
{{- printf "%ds" (trimSuffix "s" $d | int64) }}
{{- else if hasSuffix "m" $d }}
{{- printf "%ds" (mul (trimSuffix "m" $d | int64) 60) }}
{{- else if hasSuffix "h" $d }}
{{- printf "%ds" (mul (trimSuffix "h" $d | int64) 3600) }}
{{- else }}
{{- fail (printf "%q is not a duration like 500ms, 5s, 5m or 1h" $d) }}
{{- end }}
{{- end }}

{{/*
A duration from values ("500ms", "5s", "5m", "1h") in milliseconds.
*/}}
{{- define "tally.durationMs" -}}
{{- $d := toString . }}
{{- if hasSuffix "ms" $d }}{{ trimSuffix "ms" $d | int64 }}
{{- else if hasSuffix "s" $d }}{{ mul (trimSuffix "s" $d | int64) 1000 }}
{{- else if hasSuffix "m" $d }}{{ mul (trimSuffix "m" $d | int64) 60000 }}
{{- else if hasSuffix "h" $d }}{{ mul (trimSuffix "h" $d | int64) 3600000 }}
{{- else }}{{ fail (printf "%q is not a duration like 500ms, 5s, 5m or 1h" $d) }}
{{- end }}
{{- end }}

{{/*
The ext_proc's store deadline in ms: a copy of `tally_store::DEADLINE` (the
adversarial suite checks they agree).
*/}}
{{- define "tally.storeDeadlineMs" -}}200{{- end }}

{{/*
Fails unless Envoy's ext_proc message timeout leaves room for two store calls
(a reservation and the record of its refusal): otherwise Envoy gives up first
and its failure mode, not the ext_proc's, decides the call.
*/}}
{{- define "tally.checkDeadlines" -}}
{{- $timeout := include "tally.durationMs" .Values.gateway.extProc.messageTimeout | int64 }}
{{- $deadline := include "tally.storeDeadlineMs" . | int64 }}
{{- if le $timeout (mul 2 $deadline) }}
{{- fail (printf "gateway.extProc.messageTimeout (%dms) must exceed twice the ext_proc's store deadline (%dms): Envoy would give up before a fail-closed refusal arrives" $timeout $deadline) }}
{{- end }}
{{- end }}

{{/*
Envoy's `failure_mode_allow`: true only when both Envoy (gateway.extProc.failOpen)
and the ext_proc (extproc.failMode) fail open — fail-closed is closed end to end.
*/}}
{{- define "tally.failureModeAllow" -}}
{{- and .Values.gateway.extProc.failOpen (eq .Values.extproc.failMode "open") }}
{{- end }}

{{/* Secret with the API's bearer token (key `token`): extproc.api.tokenSecret or the generated one. */}}
{{- define "tally.extproc.apiTokenSecret" -}}
{{- default (include "tally.componentName" (list . "api-token")) .Values.extproc.api.tokenSecret }}
{{- end }}

{{/*
The ext_proc's gRPC transport flags: mTLS with the mounted server certificate, accepting only the
trusted client identities; or, with extproc.tls.enabled=false, plaintext said out loud.
*/}}
{{- define "tally.extproc.tlsArgs" -}}
{{- $t := .Values.extproc.tls }}
{{- if $t.enabled }}
- --tls-cert-file
- /etc/tally/tls/tls.crt
- --tls-key-file
- /etc/tally/tls/tls.key
- --tls-client-ca-file
- /etc/tally/tls/ca.crt
{{- range prepend $t.extraTrustedClientIds (include "tally.tls.clientId" .) }}
- --trusted-client-id
- {{ . | quote }}
{{- end }}
{{- else }}
- --insecure-plaintext
{{- if $t.trustPlaintextPeerAttributes }}
- --trust-plaintext-peer-attributes
{{- end }}
{{- end }}
{{- end }}

{{/*
A value the chart generates once and keeps: the current value of key in Secret name when it
exists (helm upgrade), else a new random one. tally.generatedSecretValue (list $ name key length).
*/}}
{{- define "tally.generatedSecretValue" -}}
{{- $root := index . 0 }}
{{- $old := lookup "v1" "Secret" $root.Release.Namespace (index . 1) }}
{{- $kept := dig "data" (index . 2) "" $old }}
{{- if $kept }}
{{- $kept }}
{{- else }}
{{- randAlphaNum (index . 3) | b64enc }}
{{- end }}
{{- end }}

{{/*
An ingress rule admitting peers to a named port: tally.networkPolicy.rule (list "metrics" peers).
Nothing when peers is empty: a rule without `from` would admit every source.
*/}}
{{- define "tally.networkPolicy.rule" -}}
{{- with index . 1 -}}
- ports:
    - port: {{ index $ 0 }}
      protocol: TCP
  from:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}

{{/* The proxies that call the ext_proc in this gateway.mode: the peers of its gRPC port. */}}
{{- define "tally.networkPolicy.extprocClients" -}}
{{- if eq .Values.gateway.mode "gateway" -}}
- podSelector:
    matchLabels:
      {{- include "tally.selectorLabels" (list . "gateway") | nindent 6 }}
{{- else }}
{{- $ns := ternary .Values.istio.namespace .Values.envoyGateway.proxies.namespace (eq .Values.gateway.mode "istio") }}
{{- $labels := ternary .Values.istio.workloadSelector .Values.envoyGateway.proxies.labels (eq .Values.gateway.mode "istio") -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ $ns }}
  podSelector:
    matchLabels:
      {{- toYaml $labels | nindent 6 }}
{{- end }}
{{- end }}
