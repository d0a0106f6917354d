{{/*
How the ext_proc and the operator reach Redis, and how the bundled Valkey is locked down.
Credentials never appear in a manifest: they come from Secrets through the environment.
*/}}

{{/* The ACL user Tally logs in as: redis.username, or `tally` for the bundled Redis. */}}
{{- define "tally.redis.username" -}}
{{- if .Values.redis.bundled }}
{{- default "tally" .Values.redis.username }}
{{- else }}
{{- .Values.redis.username }}
{{- end }}
{{- end }}

{{/* Secret holding the Redis password: redis.auth.existingSecret, the generated one of the bundled Redis, or none. */}}
{{- define "tally.redis.passwordSecret" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else if .Values.redis.bundled }}
{{- include "tally.componentName" (list . "redis") }}
{{- end }}
{{- end }}

{{/* Key of the password in that Secret (the generated Secret uses `password`). */}}
{{- define "tally.redis.passwordKey" -}}
{{- ternary .Values.redis.auth.secretKey "password" (not (empty .Values.redis.auth.existingSecret)) }}
{{- end }}

{{/* Secret with the CA (`ca.crt`) that verifies Redis's certificate: redis.caSecret, or the bundled TLS Redis's own. */}}
{{- define "tally.redis.caSecret" -}}
{{- if .Values.redis.caSecret }}
{{- .Values.redis.caSecret }}
{{- else if include "tally.redis.bundledTLS" . }}
{{- include "tally.componentName" (list . "redis-tls") }}
{{- end }}
{{- end }}

{{/*
The Redis URL without credentials (the password travels in TALLY_REDIS_PASSWORD,
from a Secret). The username, which is not secret, is part of the URL.
*/}}
{{- define "tally.redis.url" -}}
{{- $r := .Values.redis }}
{{- $url := "" }}
{{- if $r.bundled }}
{{- $url = printf "redis://%s:6379" (include "tally.serviceDNS" (list . "redis")) }}
{{- else }}
{{- $url = required "redis.url is required when redis.bundled=false (e.g. rediss://master.example.cache.amazonaws.com:6379)" $r.url }}
{{- end }}
{{- if and $r.tls (hasPrefix "redis://" $url) }}
{{- $url = printf "rediss://%s" (trimPrefix "redis://" $url) }}
{{- end }}
{{- with include "tally.redis.username" . }}
{{- $scheme := ternary "rediss://" "redis://" (hasPrefix "rediss://" $url) }}
{{- $url = printf "%s%s@%s" $scheme (. | urlquery) (trimPrefix $scheme $url) }}
{{- end }}
{{- $url }}
{{- end }}

{{/* Environment variable with the Redis password, if there is one. tally.redis.passwordEnv (list $ "TALLY_REDIS_PASSWORD"). */}}
{{- define "tally.redis.passwordEnv" -}}
{{- $root := index . 0 }}
{{- with include "tally.redis.passwordSecret" $root }}
{{- range rest $ }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "tally.redis.passwordSecret" $root }}
      key: {{ include "tally.redis.passwordKey" $root }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The commands Tally runs, directly or from its Lua scripts (store/src/redis.rs) and the ledger
exporter's consumer group (export/src/consumer.rs) — the only ones its ACL user may run. The
chart suite checks this list against the store's source and runs the store against a real
redis-server started with these rules.
*/}}
{{- define "tally.redis.aclCommands" -}}
{{- toJson (list
  "ping"
  "eval" "evalsha" "script|load"
  "exists" "set" "type" "expire"
  "sadd" "sismember"
  "hget" "hgetall" "hmget" "hset" "hdel" "hincrby"
  "zadd" "zrem" "zscore" "zrangebyscore"
  "xadd" "xrange" "xrevrange" "xlen" "xtrim" "xinfo" "xpending" "incrby"
  "scan" "get" "xgroup" "xreadgroup" "xack") }}
{{- end }}

{{/*
The ACL rules of Tally's user after its password, as separate words: its own keys only
(`tally:*`), no Pub/Sub channels, no command but Tally's. Nothing dangerous (FLUSHALL,
CONFIG, KEYS, DEBUG, ACL, MODULE…) is reachable.
*/}}
{{- define "tally.redis.aclRules" -}}
{{- $rules := list "~tally:*" "resetchannels" "-@all" }}
{{- range include "tally.redis.aclCommands" . | fromJsonArray }}
{{- $rules = append $rules (printf "+%s" .) }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/* The bundled Valkey's configuration file (ConfigMap key valkey.conf): no credentials in it. */}}
{{- define "tally.redis.config" -}}
{{- $r := .Values.redis -}}
# Every interface; clients must log in as an ACL user, so protected mode adds nothing.
bind * -::*
protected-mode no
{{- if include "tally.redis.bundledTLS" . }}
# TLS only, with a certificate from the chart's CA; clients log in as the ACL user.
port 0
tls-port 6379
tls-cert-file /etc/valkey/tls/tls.crt
tls-key-file /etc/valkey/tls/tls.key
tls-ca-cert-file /etc/valkey/tls/ca.crt
tls-auth-clients no
{{- else }}
port 6379
{{- end }}
dir /data
# The append-only file (fsync every second) keeps counters and the ledger across restarts.
appendonly yes
appendfsync everysec
save ""
# Evicting a budget counter would silently forget spend: refuse writes instead.
maxmemory {{ $r.maxmemory }}
maxmemory-policy noeviction
# No anonymous clients: the only user is Tally's, whose rules and secret come as command-line
# arguments (the secret from the Secret, through the environment).
user default off
{{- end }}

{{/* `maxmemory` (b, kb, mb, gb: powers of 1024, as Redis reads them) in bytes. */}}
{{- define "tally.redis.maxmemoryBytes" -}}
{{- $m := lower (toString .Values.redis.maxmemory) -}}
{{- $n := regexFind "^[0-9]+" $m | int64 -}}
{{- $unit := trimPrefix (toString $n) $m -}}
{{- $scale := dict "b" 1 "kb" 1024 "mb" 1048576 "gb" 1073741824 -}}
{{- mul $n (get $scale $unit) -}}
{{- end }}

{{/* Records kept per team in the ledger: `extproc.ledgerMaxLen`, or with 0 the bundled Redis's
ledger share divided among `redis.sizing.teams` at 1000 B a record (100000 with an external Redis). */}}
{{- define "tally.extproc.ledgerMaxLen" -}}
{{- $set := .Values.extproc.ledgerMaxLen | int64 -}}
{{- if gt $set 0 -}}
{{- $set -}}
{{- else if .Values.redis.bundled -}}
{{- $s := .Values.redis.sizing -}}
{{- $share := div (mul (include "tally.redis.maxmemoryBytes" . | int64) ($s.ledgerPercent | int64)) 100 -}}
{{- max 1 (div $share (mul ($s.teams | int64) 1000)) -}}
{{- else -}}
100000
{{- end -}}
{{- end }}
