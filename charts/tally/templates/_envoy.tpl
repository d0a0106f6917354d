{{/*
The gateway's Envoy bootstrap (gateway.mode=gateway). Rendered into the
gateway ConfigMap (key envoy.yaml) and, unchanged, used by the end-to-end tests
with loopback addresses; so everything here must work on 127.0.0.1 too.

HTTP filter order matters:
  1. ext_proc             attribution, budget check, pricing (sees the client's request as sent)
  2. header_mutation      drops the client's SigV4 headers (signing only)
  3. aws_request_signing  re-signs with the gateway's identity for the Bedrock host (signing only)
  4. router
Route-level header rewrites happen in the router, after signing, so the Bedrock
host is set by the signing filter's host_rewrite (it signs what it sends) as
well as by the route (for signing.enabled=false).
*/}}
{{- define "tally.gateway.envoyConfig" -}}
{{- $g := .Values.gateway }}
{{- $bedrockHost := include "tally.bedrockHost" . }}
{{- $upstreamHost := default $bedrockHost $g.upstream.host }}
{{- $extprocHost := default (printf "%s-headless.%s.svc.%s" (include "tally.componentName" (list . "extproc")) .Release.Namespace .Values.clusterDomain) $g.extProc.host }}
node:
  id: tally-gateway
  cluster: tally-gateway
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{ $g.adminPort | int64 }} }
overload_manager:
  resource_monitors:
    - name: envoy.resource_monitors.global_downstream_max_connections
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
        max_active_downstream_connections: {{ $g.maxDownstreamConnections | int64 }}
static_resources:
  listeners:
    - name: bedrock
      address:
        socket_address: { address: {{ $g.listenAddress | quote }}, port_value: {{ $g.listenPort | int64 }} }
      per_connection_buffer_limit_bytes: {{ $g.bufferLimitBytes | int64 }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: bedrock
                codec_type: AUTO
                use_remote_address: true
                # Streams (ConverseStream, InvokeModelWithResponseStream) can run for minutes:
                # no timeout on receiving the request; the route bounds the call.
                request_timeout: 0s
                stream_idle_timeout: {{ include "tally.envoyDuration" $g.idleTimeout }}
                {{- if $g.accessLog.enabled }}
                access_log:
                  - name: envoy.access_loggers.stdout
                    # Probes and scrapes are not Bedrock calls: keep them out of the log.
                    filter:
                      and_filter:
                        filters:
                          {{- range list "/ready" "/stats/prometheus" }}
                          - header_filter:
                              header: { name: ":path", string_match: { exact: {{ . | quote }} }, invert_match: true }
                          {{- end }}
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
                      log_format:
                        json_format:
                          time: "%START_TIME%"
                          method: "%REQ(:METHOD)%"
                          path: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"
                          protocol: "%PROTOCOL%"
                          status: "%RESPONSE_CODE%"
                          response_flags: "%RESPONSE_FLAGS%"
                          response_code_details: "%RESPONSE_CODE_DETAILS%"
                          bytes_received: "%BYTES_RECEIVED%"
                          bytes_sent: "%BYTES_SENT%"
                          duration_ms: "%DURATION%"
                          upstream_service_time_ms: "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"
                          upstream_host: "%UPSTREAM_HOST%"
                          downstream_remote_address: "%DOWNSTREAM_REMOTE_ADDRESS%"
                          user_agent: "%REQ(USER-AGENT)%"
                          x_request_id: "%REQ(X-REQUEST-ID)%"
                          amzn_request_id: "%RESP(X-AMZN-REQUESTID)%"
                          team: "%DYNAMIC_METADATA(tally:team)%"
                          tenant: "%DYNAMIC_METADATA(tally:tenant)%"
                          workflow: "%DYNAMIC_METADATA(tally:workflow)%"
                          model: "%DYNAMIC_METADATA(tally:model)%"
                          tally_request_id: "%DYNAMIC_METADATA(tally:requestId)%"
                          cost_usd: "%DYNAMIC_METADATA(tally:costUsd)%"
                          outcome: "%DYNAMIC_METADATA(tally:outcome)%"
                {{- end }}
                route_config:
                  name: bedrock
                  virtual_hosts:
                    - name: bedrock
                      domains: ["*"]
                      routes:
                        # Kubelet probes and Prometheus reach two read-only admin endpoints here;
                        # the admin port itself listens on 127.0.0.1 only.
                        {{- range list "/ready" "/stats/prometheus" }}
                        - match: { path: {{ . | quote }}, headers: [{ name: ":method", string_match: { exact: GET } }] }
                          route: { cluster: envoy_admin }
                          typed_per_filter_config:
                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              disabled: true
                            {{- if $g.signing.enabled }}
                            envoy.filters.http.header_mutation:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              disabled: true
                            envoy.filters.http.aws_request_signing:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              disabled: true
                            {{- end }}
                        {{- end }}
                        - match: { prefix: "/" }
                          route:
                            cluster: bedrock
                            host_rewrite_literal: {{ $bedrockHost }}
                            # The longest call; the ext_proc's reservation TTL is derived from it.
                            timeout: {{ $g.routeTimeoutSeconds | int64 }}s
                            idle_timeout: {{ include "tally.envoyDuration" $g.idleTimeout }}
                http_filters:
                  - name: envoy.filters.http.ext_proc
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
                      grpc_service:
                        envoy_grpc: { cluster_name: tally_extproc }
                      # Headers only by default; the ext_proc asks per call for what it needs
                      # (BUFFERED request body when the headers cannot admit a call, BUFFERED response body
                      # for JSON answers, STREAMED for event streams), always sending a complete mode.
                      processing_mode:
                        request_header_mode: SEND
                        response_header_mode: SEND
                        request_body_mode: NONE
                        response_body_mode: NONE
                        request_trailer_mode: SKIP
                        response_trailer_mode: SKIP
                      allow_mode_override: true
                      message_timeout: {{ include "tally.envoyDuration" $g.extProc.messageTimeout }}
                      max_message_timeout: {{ include "tally.envoyDuration" $g.extProc.maxMessageTimeout }}
                      failure_mode_allow: {{ include "tally.failureModeAllow" . }}
                      request_attributes:
                        - connection.uri_san_peer_certificate
                        - source.address
                      metadata_options:
                        receiving_namespaces:
                          untyped: ["tally"]
                  {{- if $g.signing.enabled }}
                  # The client signed for the gateway's host with its own (possibly dummy)
                  # credentials; a stale x-amz-security-token would break the new signature.
                  - name: envoy.filters.http.header_mutation
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
                      mutations:
                        request_mutations:
                          - remove: authorization
                          - remove: x-amz-security-token
                          - remove: x-amz-date
                          - remove: x-amz-content-sha256
                  - name: envoy.filters.http.aws_request_signing
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning
                      service_name: bedrock
                      region: {{ $g.region }}
                      host_rewrite: {{ $bedrockHost }}
                      # Sign the payload hash (the body is buffered up to bufferLimitBytes).
                      use_unsigned_payload: false
                      # No credential_provider: the default chain (environment, IRSA web identity,
                      # EKS Pod Identity / container credentials, instance profile).
                  {{- end }}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: tally_extproc
      type: STRICT_DNS
      dns_lookup_family: V4_PREFERRED
      # Re-resolved every 5 s, Envoy's default: the Cluster's dns_refresh_rate is deprecated.
      connect_timeout: 1s
      lb_policy: ROUND_ROBIN
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options:
              connection_keepalive: { interval: 30s, timeout: 5s }
      # One in-flight Bedrock call is one gRPC stream: the default of 1024 would cap concurrency.
      circuit_breakers:
        thresholds:
          - max_connections: 100000
            max_pending_requests: 100000
            max_requests: 100000
      load_assignment:
        cluster_name: tally_extproc
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: { address: {{ $extprocHost | quote }}, port_value: {{ $g.extProc.port | int64 }} }
      {{- if .Values.extproc.tls.enabled }}
      {{- $serverName := include "tally.tls.extprocServerName" . }}
      # mTLS: the gateway presents its client certificate and accepts only the ext_proc's
      # certificate for the Service name, signed by the chart's CA. Both come through file-based
      # SDS watching the Secret's directory, so a renewed certificate applies without a restart.
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: {{ $serverName }}
          common_tls_context:
            alpn_protocols: ["h2"]
            tls_certificate_sds_secret_configs:
              - name: extproc_client
                sds_config:
                  resource_api_version: V3
                  path_config_source: { path: {{ include "tally.gateway.configDir" . }}/extproc-client-cert.yaml }
            combined_validation_context:
              default_validation_context:
                match_typed_subject_alt_names:
                  - san_type: DNS
                    matcher: { exact: {{ $serverName }} }
              validation_context_sds_secret_config:
                name: extproc_ca
                sds_config:
                  resource_api_version: V3
                  path_config_source: { path: {{ include "tally.gateway.configDir" . }}/extproc-ca.yaml }
      {{- end }}
    - name: bedrock
      type: LOGICAL_DNS
      dns_lookup_family: V4_PREFERRED
      connect_timeout: {{ include "tally.envoyDuration" $g.upstream.connectTimeout }}
      per_connection_buffer_limit_bytes: {{ $g.bufferLimitBytes | int64 }}
      circuit_breakers:
        thresholds:
          - max_connections: 100000
            max_pending_requests: 100000
            max_requests: 100000
            max_retries: 10
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          common_http_protocol_options:
            idle_timeout: 50s
          {{- if $g.upstream.tls }}
          auto_config:
            http_protocol_options: {}
            http2_protocol_options: {}
          {{- else }}
          explicit_http_config:
            http_protocol_options: {}
          {{- end }}
      load_assignment:
        cluster_name: bedrock
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: { address: {{ $upstreamHost | quote }}, port_value: {{ $g.upstream.port | int64 }} }
      {{- if $g.upstream.tls }}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          sni: {{ $bedrockHost }}
          common_tls_context:
            validation_context:
              trusted_ca: { filename: {{ $g.upstream.caFile }} }
              match_typed_subject_alt_names:
                - san_type: DNS
                  matcher: { exact: {{ $bedrockHost }} }
      {{- end }}
    - name: envoy_admin
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: envoy_admin
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: { address: 127.0.0.1, port_value: {{ $g.adminPort | int64 }} }
{{- end }}

{{/* Where the gateway mounts its ConfigMap (the bootstrap and the SDS files). */}}
{{- define "tally.gateway.configDir" -}}
/etc/envoy
{{- end }}

{{/* Where the gateway mounts its client certificate Secret (tls.crt, tls.key, ca.crt). */}}
{{- define "tally.gateway.clientCertDir" -}}
/etc/tally/extproc-client
{{- end }}

{{/*
The SDS resources the ext_proc cluster's TLS reads (keys of the gateway ConfigMap): file names
only, the certificate and key stay in the Secret. watched_directory is the Secret's mount, whose
contents the kubelet swaps atomically on renewal.
*/}}
{{- define "tally.gateway.extprocSds" -}}
{{- $dir := include "tally.gateway.clientCertDir" . -}}
extproc-client-cert.yaml: |
  resources:
    - "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
      name: extproc_client
      tls_certificate:
        certificate_chain: { filename: {{ $dir }}/tls.crt }
        private_key: { filename: {{ $dir }}/tls.key }
        watched_directory: { path: {{ $dir }} }
extproc-ca.yaml: |
  resources:
    - "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
      name: extproc_ca
      validation_context:
        trusted_ca: { filename: {{ $dir }}/ca.crt }
        watched_directory: { path: {{ $dir }} }
{{- end }}
