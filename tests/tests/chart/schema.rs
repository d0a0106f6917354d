//! The chart's values schema: a bad value fails `helm template` with a message naming it.

use crate::render::try_render;

#[test]
fn values_schema_rejects_bad_values_with_a_message_naming_them() {
    let cases: &[(&str, &str)] = &[
        (
            "gateway.mode=bogus",
            "at '/gateway/mode': value must be one of 'gateway', 'istio', 'envoy-gateway'",
        ),
        (
            "extproc.failMode=maybe",
            "at '/extproc/failMode': value must be one of 'open', 'closed'",
        ),
        ("extproc.replicas=-1", "at '/extproc/replicas': minimum"),
        ("gateway.replicas=-2", "at '/gateway/replicas': minimum"),
        ("gateway.region=mars", "at '/gateway/region'"),
        (
            "gateway.extProc.messageTimeout=fast",
            "at '/gateway/extProc/messageTimeout'",
        ),
        ("gateway.listenPort=70000", "at '/gateway/listenPort': maximum"),
        ("redis.bundled=false", "at '/redis/url'"),
        ("redis.url=http://redis:6379", "at '/redis/url'"),
        ("gateway.mode=envoy-gateway", "at '/envoyGateway/targetRefs'"),
        ("gateway.modee=istio", "additional properties 'modee' not allowed"),
        ("extproc.store=memory", "at '/extproc/replicas': maximum"),
        ("redis.maxmemory=lots", "at '/redis/maxmemory'"),
        ("extproc.tls.enabled=maybe", "at '/extproc/tls/enabled'"),
        (
            "extproc.tls.certManager.issuerRef.kind=Vault",
            "at '/extproc/tls/certManager/issuerRef/kind'",
        ),
        (
            "extproc.tls.generated.validityDays=1",
            "at '/extproc/tls/generated/validityDays': minimum",
        ),
        (
            "envoyGateway.backendTLSPolicyApiVersion=v9",
            "at '/envoyGateway/backendTLSPolicyApiVersion'",
        ),
    ];
    for (set, message) in cases {
        match try_render(None, &[set]) {
            Ok(_) => panic!("--set {set} rendered; the schema must reject it"),
            Err(stderr) => {
                assert!(
                    stderr.contains("values don't meet the specifications of the schema"),
                    "--set {set}: not a schema error:\n{stderr}"
                );
                assert!(
                    stderr.contains(message),
                    "--set {set}: expected {message:?} in:\n{stderr}"
                );
            }
        }
    }
}
