{{/*
The ext_proc's OpenTelemetry environment (`tracing`): one span per metered Bedrock call over OTLP.
Rendered only with `tracing.enabled`; the ext_proc exports nothing without an endpoint.
*/}}
{{- define "tally.tracing.env" -}}
{{- $t := .Values.tracing -}}
{{- if $t.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "tracing.endpoint is required with tracing.enabled (an OTLP collector: http://otel-collector:4317 for grpc, :4318 for http/protobuf)" $t.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $t.protocol | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ $t.serviceName | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $t.sampler | quote }}
{{- with $t.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
- name: OTEL_BSP_MAX_QUEUE_SIZE
  value: {{ $t.maxQueueSize | quote }}
{{- with $t.resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
