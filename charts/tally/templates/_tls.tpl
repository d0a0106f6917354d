{{/*
The certificates of the chart's TLS connections, and where they come from.

Leaves (tally.tls.leaves):
  extproc  server certificate of the ext_proc's gRPC port   Secret <fullname>-extproc-tls
  gateway  client certificate the gateway's proxies present Secret <fullname>-gateway-client-tls
  redis    server certificate of the bundled Valkey         Secret <fullname>-redis-tls
Each Secret holds tls.crt, tls.key and ca.crt (the CA that signed it), whoever issues it:
  - cert-manager (extproc.tls.certManager.enabled): certificates.yaml renders Certificates;
  - otherwise the chart (tls-secrets.yaml): one CA, kept in Secret <fullname>-ca across
    upgrades (lookup), signs every leaf; `helm upgrade` re-issues a leaf when fewer than
    renewBeforeDays remain or its names changed. Without a cluster to look up (`helm
    template`), every render issues a new CA and new leaves.
*/}}

{{/* The DNS names of a Service of this release: tally.tls.serviceNames (list $ "extproc"). */}}
{{- define "tally.tls.serviceNames" -}}
{{- $root := index . 0 }}
{{- $svc := include "tally.componentName" (list $root (index . 1)) }}
{{- $ns := $root.Release.Namespace }}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns $root.Values.clusterDomain)) }}
{{- end }}

{{/* The identity (DNS SAN) of the gateway's client certificate, the one the ext_proc trusts. */}}
{{- define "tally.tls.clientId" -}}
{{- default (printf "%s.%s.svc" (include "tally.componentName" (list . "gateway")) .Release.Namespace) .Values.extproc.tls.clientId }}
{{- end }}

{{/* Name the gateway's Envoy expects in the ext_proc's certificate, also sent as SNI. */}}
{{- define "tally.tls.extprocServerName" -}}
{{- include "tally.serviceDNS" (list . "extproc") }}
{{- end }}

{{/* Namespace of the gateway's client certificate: where the proxies that present it run their Secrets. */}}
{{- define "tally.tls.clientNamespace" -}}
{{- ternary .Values.istio.namespace .Release.Namespace (eq .Values.gateway.mode "istio") }}
{{- end }}

{{/* The bundled Redis serves TLS. */}}
{{- define "tally.redis.bundledTLS" -}}
{{- if and .Values.redis.bundled (eq .Values.extproc.store "redis") .Values.redis.tls }}true{{ end }}
{{- end }}

{{/* The leaf certificates this configuration needs, as a JSON list of {key, secret, namespace, usage, names}. */}}
{{- define "tally.tls.leaves" -}}
{{- $leaves := list }}
{{- if .Values.extproc.tls.enabled }}
{{- $extproc := concat (include "tally.tls.serviceNames" (list . "extproc") | fromJsonArray) (include "tally.tls.serviceNames" (list . "extproc-headless") | fromJsonArray) }}
{{- $leaves = append $leaves (dict "key" "extproc" "secret" (include "tally.componentName" (list . "extproc-tls")) "namespace" .Release.Namespace "usage" "server auth" "names" $extproc) }}
{{- $leaves = append $leaves (dict "key" "gateway" "secret" (include "tally.componentName" (list . "gateway-client-tls")) "namespace" (include "tally.tls.clientNamespace" .) "usage" "client auth" "names" (list (include "tally.tls.clientId" .))) }}
{{- end }}
{{- if include "tally.redis.bundledTLS" . }}
{{- $leaves = append $leaves (dict "key" "redis" "secret" (include "tally.componentName" (list . "redis-tls")) "namespace" .Release.Namespace "usage" "server auth" "names" (include "tally.tls.serviceNames" (list . "redis") | fromJsonArray)) }}
{{- end }}
{{- toJson $leaves }}
{{- end }}

{{/*
The chart-generated CA and leaves, as JSON {ca: {crt, key}, leaves: {<key>: {crt, key, notAfter, names}}}.
Computed once per render and kept in .Values, so every template sees the same certificates.
*/}}
{{- define "tally.tls.generated" -}}
{{- if not (hasKey .Values "_tallyGeneratedTLS") }}
{{- $ca := include "tally.tls.generatedCA" . | fromJson }}
{{- $leaves := dict }}
{{- range $leaf := include "tally.tls.leaves" . | fromJsonArray }}
{{- $_ := set $leaves $leaf.key (include "tally.tls.generatedLeaf" (list $ $ca $leaf) | fromJson) }}
{{- end }}
{{- $_ := set .Values "_tallyGeneratedTLS" (dict "ca" (dict "crt" $ca.crt "key" $ca.key) "leaves" $leaves) }}
{{- end }}
{{- toJson .Values._tallyGeneratedTLS }}
{{- end }}

{{/* The CA: the one in Secret <fullname>-ca when it exists, else a new one ({crt, key, fresh}). */}}
{{- define "tally.tls.generatedCA" -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "tally.componentName" (list . "ca")) }}
{{- $data := dig "data" dict $old }}
{{- if and (index $data "tls.crt") (index $data "tls.key") }}
{{- $ca := buildCustomCert (index $data "tls.crt") (index $data "tls.key") }}
{{- toJson (dict "crt" $ca.Cert "key" $ca.Key "fresh" false) }}
{{- else }}
{{- $ca := genCA (printf "%s-ca" (include "tally.fullname" .)) (.Values.extproc.tls.generated.caValidityDays | int) }}
{{- toJson (dict "crt" $ca.Cert "key" $ca.Key "fresh" true) }}
{{- end }}
{{- end }}

{{/*
One leaf: the existing Secret's certificate while it was signed by the same CA for the same names
and has more than renewBeforeDays left; else a new one. tally.tls.generatedLeaf (list $ $ca $leaf).
*/}}
{{- define "tally.tls.generatedLeaf" -}}
{{- $root := index . 0 }}
{{- $ca := index . 1 }}
{{- $leaf := index . 2 }}
{{- $g := $root.Values.extproc.tls.generated }}
{{- $names := join "," $leaf.names }}
{{- $old := lookup "v1" "Secret" $leaf.namespace $leaf.secret }}
{{- $notAfter := dig "metadata" "annotations" "tally.dev/not-after" "" $old }}
{{- $keep := and (not $ca.fresh) $notAfter (eq $names (dig "metadata" "annotations" "tally.dev/names" "" $old)) }}
{{- if $keep }}
{{- $renewAt := sub (toDate "2006-01-02T15:04:05Z07:00" $notAfter | unixEpoch | int64) (mul ($g.renewBeforeDays | int64) 86400) }}
{{- $keep = gt $renewAt (now | unixEpoch | int64) }}
{{- end }}
{{- if $keep }}
{{- toJson (dict "crt" (b64dec (index $old.data "tls.crt")) "key" (b64dec (index $old.data "tls.key")) "notAfter" $notAfter "names" $names) }}
{{- else }}
{{- $signer := buildCustomCert ($ca.crt | b64enc) ($ca.key | b64enc) }}
{{- $cert := genSignedCert (first $leaf.names) nil $leaf.names ($g.validityDays | int) $signer }}
{{- $until := dateInZone "2006-01-02T15:04:05Z07:00" (now | dateModify (printf "+%dh" (mul ($g.validityDays | int) 24))) "UTC" }}
{{- toJson (dict "crt" $cert.Cert "key" $cert.Key "notAfter" $until "names" $names) }}
{{- end }}
{{- end }}

{{/* A checksum of a component's certificates, so pods roll when the chart re-issues them: tally.tls.checksum (list $ "extproc"). */}}
{{- define "tally.tls.checksum" -}}
{{- $root := index . 0 }}
{{- if not $root.Values.extproc.tls.certManager.enabled }}
{{- $gen := include "tally.tls.generated" $root | fromJson }}
{{- with index $gen.leaves (index . 1) }}
{{- .crt | sha256sum }}
{{- end }}
{{- end }}
{{- end }}

{{/* The issuer of every Certificate: extproc.tls.certManager.issuerRef, or the chart's CA Issuer. */}}
{{- define "tally.tls.issuerRef" -}}
{{- $ref := .Values.extproc.tls.certManager.issuerRef }}
{{- if $ref.name }}
{{- toJson (dict "name" $ref.name "kind" (default "Issuer" $ref.kind) "group" (default "cert-manager.io" $ref.group)) }}
{{- else }}
{{- toJson (dict "name" (include "tally.componentName" (list . "ca")) "kind" "Issuer" "group" "cert-manager.io") }}
{{- end }}
{{- end }}
