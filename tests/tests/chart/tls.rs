//! The mTLS wiring between the proxies and the ext_proc as rendered: the chart's CA and leaf
//! certificates (checked with `openssl`), the ext_proc's TLS flags and trusted client identity,
//! the gateway's client certificate and SDS files, cert-manager's Certificates for the same
//! Secrets, the Istio and Envoy Gateway objects that carry the client certificate, and the
//! explicit plaintext flag. A real Envoy ↔ ext_proc call with these files is in `mtls`.

use std::process::Command;

use serde_yaml::Value;

use crate::render::{
    arg, documents, envoy_cluster, find, get, items, named, of_kind, output, pod_spec, render, report, secret_data,
    strs, try_render,
};

/// The name the gateway checks the ext_proc's certificate for, and sends as SNI.
pub const SERVER_NAME: &str = "tally-extproc.tally.svc.cluster.local";
/// The identity of the gateway's client certificate, the only one the ext_proc trusts by default.
pub const CLIENT_ID: &str = "tally-gateway.tally.svc";

/// `openssl` on PEM files written to a temp dir: (success, stdout + stderr).
fn openssl(args: &[&str], files: &[(&str, &[u8])]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, pem) in files {
        std::fs::write(dir.path().join(file), pem).expect("write PEM");
    }
    let out = output(Command::new("openssl").args(args).current_dir(dir.path()));
    (out.status.success(), report(&out))
}

/// The DNS names (subjectAltName) of a PEM certificate.
fn dns_names(pem: &[u8]) -> Vec<String> {
    let (ok, text) = openssl(
        &["x509", "-in", "c.pem", "-noout", "-ext", "subjectAltName"],
        &[("c.pem", pem)],
    );
    assert!(ok, "{text}");
    text.split([',', '\n'])
        .filter_map(|part| part.trim().strip_prefix("DNS:").map(str::to_string))
        .collect()
}

/// Whether `ca` signed `leaf`, for `purpose` (`sslserver`/`sslclient`).
fn signed_by(leaf: &[u8], ca: &[u8], purpose: &str) -> bool {
    let args = ["verify", "-purpose", purpose, "-CAfile", "ca.pem", "leaf.pem"];
    openssl(&args, &[("ca.pem", ca), ("leaf.pem", leaf)]).0
}

#[test]
fn extproc_serves_mtls_with_the_charts_certificates_and_trusts_only_the_gateway() {
    let docs = documents(&render(None, &[]));
    let ca = secret_data(&docs, "tally-ca", "tls.crt");
    for (secret, purpose) in [
        ("tally-extproc-tls", "sslserver"),
        ("tally-gateway-client-tls", "sslclient"),
    ] {
        assert_eq!(get(&docs, "Secret", secret)["type"].as_str(), Some("kubernetes.io/tls"));
        assert_eq!(
            secret_data(&docs, secret, "ca.crt"),
            ca,
            "{secret}: ca.crt is the chart's CA"
        );
        assert!(
            signed_by(&secret_data(&docs, secret, "tls.crt"), &ca, purpose),
            "{secret} for {purpose}"
        );
    }
    assert!(dns_names(&secret_data(&docs, "tally-extproc-tls", "tls.crt")).contains(&SERVER_NAME.to_string()));
    assert_eq!(
        dns_names(&secret_data(&docs, "tally-gateway-client-tls", "tls.crt")),
        [CLIENT_ID]
    );

    let pod = pod_spec(&docs, "Deployment", "tally-extproc");
    let c = &pod["containers"][0];
    for (flag, file) in [
        ("--tls-cert-file", "tls/tls.crt"),
        ("--tls-key-file", "tls/tls.key"),
        ("--tls-client-ca-file", "tls/ca.crt"),
    ] {
        assert_eq!(arg(c, flag), Some(format!("/etc/tally/{file}").as_str()), "{flag}");
        assert_projected(pod, "tally-extproc-tls", file);
    }
    assert_eq!(arg(c, "--trusted-client-id"), Some(CLIENT_ID));
    let args = strs(&c["args"]);
    assert_eq!(
        args.iter().filter(|a| **a == "--trusted-client-id").count(),
        1,
        "{args:?}"
    );
    assert!(!args.contains(&"--insecure-plaintext"), "{args:?}");
    let annotations = &get(&docs, "Deployment", "tally-extproc")["spec"]["template"]["metadata"]["annotations"];
    assert!(
        annotations["checksum/tls"].is_string(),
        "re-issued certificates roll the ext_proc"
    );
    assert_gateway_presents_the_client_certificate(&docs);
}

/// The projected `config` volume of `pod` puts `file` from Secret `secret` under /etc/tally.
fn assert_projected(pod: &Value, secret: &str, file: &str) {
    let volume = named(&pod["volumes"], "name", "config").expect("config volume");
    let found = items(&volume["projected"]["sources"])
        .filter(|s| s["secret"]["name"].as_str() == Some(secret))
        .flat_map(|s| items(&s["secret"]["items"]))
        .any(|i| i["path"].as_str() == Some(file));
    assert!(
        found,
        "{file} from Secret {secret} is not projected into /etc/tally: {volume:?}"
    );
}

/// The gateway mounts its client Secret where the SDS files point, and its ext_proc cluster
/// verifies the ext_proc's name with the CA from that Secret.
fn assert_gateway_presents_the_client_certificate(docs: &[Value]) {
    let pod = pod_spec(docs, "Deployment", "tally-gateway");
    let mount = named(
        &pod["containers"][0]["volumeMounts"],
        "mountPath",
        "/etc/tally/extproc-client",
    )
    .expect("client certificate mount");
    let volume = named(&pod["volumes"], "name", mount["name"].as_str().unwrap()).expect("volume");
    assert_eq!(
        volume["secret"]["secretName"].as_str(),
        Some("tally-gateway-client-tls")
    );
    let cm = &get(docs, "ConfigMap", "tally-gateway")["data"];
    let cert = cm["extproc-client-cert.yaml"]
        .as_str()
        .expect("SDS file of the client certificate");
    let ca = cm["extproc-ca.yaml"].as_str().expect("SDS file of the CA");
    for (sds, file) in [(cert, "tls.crt"), (cert, "tls.key"), (ca, "ca.crt")] {
        assert!(sds.contains(&format!("/etc/tally/extproc-client/{file}")), "{sds}");
        assert!(
            sds.contains("watched_directory: { path: /etc/tally/extproc-client }"),
            "{sds}"
        );
    }
    let envoy: Value = serde_yaml::from_str(cm["envoy.yaml"].as_str().unwrap()).expect("envoy.yaml");
    let tls = &envoy_cluster(&envoy, "tally_extproc")["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"].as_str(), Some(SERVER_NAME));
    let context = &tls["common_tls_context"];
    assert_eq!(strs(&context["alpn_protocols"]), ["h2"], "gRPC over TLS");
    let validation = &context["combined_validation_context"];
    assert_eq!(
        validation["default_validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"].as_str(),
        Some(SERVER_NAME)
    );
    assert_eq!(
        validation["validation_context_sds_secret_config"]["name"].as_str(),
        Some("extproc_ca")
    );
    assert_eq!(
        context["tls_certificate_sds_secret_configs"][0]["name"].as_str(),
        Some("extproc_client")
    );
}

#[test]
fn plaintext_is_an_explicit_choice() {
    let docs = documents(&render(Some("plaintext.yaml"), &[]));
    let args = strs(&pod_spec(&docs, "Deployment", "tally-extproc")["containers"][0]["args"]);
    assert!(args.contains(&"--insecure-plaintext"), "{args:?}");
    assert!(
        !args.iter().any(|a| a.starts_with("--tls-") || a.starts_with("--trust")),
        "{args:?}"
    );
    let cm = &get(&docs, "ConfigMap", "tally-gateway")["data"];
    let envoy: Value = serde_yaml::from_str(cm["envoy.yaml"].as_str().unwrap()).unwrap();
    assert!(envoy_cluster(&envoy, "tally_extproc")["transport_socket"].is_null());
    assert!(cm["extproc-ca.yaml"].is_null());

    let trusting = documents(&render(
        Some("plaintext.yaml"),
        &["extproc.tls.trustPlaintextPeerAttributes=true"],
    ));
    let args = strs(&pod_spec(&trusting, "Deployment", "tally-extproc")["containers"][0]["args"]);
    assert!(args.contains(&"--trust-plaintext-peer-attributes"), "{args:?}");
    let with_tls = documents(&render(None, &["extproc.tls.trustPlaintextPeerAttributes=true"]));
    let args = strs(&pod_spec(&with_tls, "Deployment", "tally-extproc")["containers"][0]["args"]);
    assert!(
        !args.contains(&"--trust-plaintext-peer-attributes"),
        "only without TLS: {args:?}"
    );
}

#[test]
fn cert_manager_issues_the_secrets_the_pods_mount() {
    let docs = documents(&render(Some("cert-manager.yaml"), &[]));
    let cert = |n: &str| &get(&docs, "Certificate", n)["spec"];
    let leaves = [
        ("tally-extproc-tls", "server auth", SERVER_NAME),
        ("tally-gateway-client-tls", "client auth", CLIENT_ID),
        ("tally-redis-tls", "server auth", "tally-redis.tally.svc.cluster.local"),
    ];
    for (secret, usage, dns) in leaves {
        let spec = cert(secret);
        assert_eq!(spec["secretName"].as_str(), Some(secret));
        assert!(strs(&spec["usages"]).contains(&usage), "{secret}: {usage}");
        assert!(strs(&spec["dnsNames"]).contains(&dns), "{secret}: {dns}");
        assert_eq!(spec["issuerRef"]["name"].as_str(), Some("tally-ca"), "{secret}");
        assert_eq!(spec["issuerRef"]["kind"].as_str(), Some("Issuer"), "{secret}");
    }
    assert_eq!(cert("tally-ca")["isCA"].as_bool(), Some(true));
    assert_eq!(cert("tally-ca")["issuerRef"]["name"].as_str(), Some("tally-selfsigned"));
    assert!(!get(&docs, "Issuer", "tally-selfsigned")["spec"]["selfSigned"].is_null());
    assert_eq!(
        get(&docs, "Issuer", "tally-ca")["spec"]["ca"]["secretName"].as_str(),
        Some("tally-ca")
    );
    let args = strs(&pod_spec(&docs, "Deployment", "tally-extproc")["containers"][0]["args"]);
    assert!(
        args.contains(&"--tls-client-ca-file") && args.contains(&CLIENT_ID),
        "{args:?}"
    );

    // An issuer of the cluster's own: no chart CA, every Certificate names it.
    let sets = ["extproc.tls.certManager.issuerRef.name=corp-ca,extproc.tls.certManager.issuerRef.kind=ClusterIssuer"];
    let own = documents(&render(Some("cert-manager.yaml"), &sets));
    assert!(of_kind(&own, "Issuer").next().is_none() && find(&own, "Certificate", "tally-ca").is_none());
    for c in of_kind(&own, "Certificate") {
        assert_eq!(c["spec"]["issuerRef"]["name"].as_str(), Some("corp-ca"));
        assert_eq!(c["spec"]["issuerRef"]["kind"].as_str(), Some("ClusterIssuer"));
    }
}

#[test]
fn istio_and_envoy_gateway_proxies_carry_the_client_certificate() {
    let istio = documents(&render(Some("istio.yaml"), &[]));
    let dr = get(&istio, "DestinationRule", "tally-extproc");
    assert_eq!(dr["metadata"]["namespace"].as_str(), Some("istio-system"));
    assert_eq!(dr["spec"]["host"].as_str(), Some(SERVER_NAME));
    let tls = &dr["spec"]["trafficPolicy"]["tls"];
    assert_eq!(tls["mode"].as_str(), Some("MUTUAL"));
    assert_eq!(tls["credentialName"].as_str(), Some("tally-gateway-client-tls"));
    assert_eq!(strs(&tls["subjectAltNames"]), [SERVER_NAME]);
    let client = get(&istio, "Secret", "tally-gateway-client-tls");
    assert_eq!(
        client["metadata"]["namespace"].as_str(),
        Some("istio-system"),
        "beside the proxies"
    );
    let annotations = &get(&istio, "Deployment", "tally-extproc")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["sidecar.istio.io/inject"].as_str(),
        Some("false"),
        "no sidecar between"
    );

    let eg = documents(&render(Some("envoy-gateway.yaml"), &[]));
    let policy = &get(&eg, "BackendTLSPolicy", "tally-extproc")["spec"];
    assert_eq!(policy["targetRefs"][0]["name"].as_str(), Some("tally-extproc"));
    assert_eq!(policy["validation"]["hostname"].as_str(), Some(SERVER_NAME));
    assert_eq!(
        policy["validation"]["caCertificateRefs"][0]["name"].as_str(),
        Some("tally-gateway-client-tls")
    );
    let grant = of_kind(&eg, "ReferenceGrant").next().expect("ReferenceGrant");
    let to: Vec<&str> = items(&grant["spec"]["to"]).filter_map(|t| t["kind"].as_str()).collect();
    assert_eq!(
        to,
        ["Service", "Secret"],
        "an EnvoyProxy beside the Gateway may name the client Secret"
    );
}

#[test]
fn misconfigurations_fail_with_a_message_naming_the_fix() {
    let cases: [(Option<&str>, &str, &str); 2] = [
        (
            Some("istio.yaml"),
            "extproc.tls.certManager.enabled=true",
            "set extproc.tls.certManager.issuerRef to a ClusterIssuer",
        ),
        (
            None,
            "extproc.adminPort=9464",
            "extproc.adminPort is now extproc.metricsPort",
        ),
    ];
    for (values, set, message) in cases {
        let err = try_render(values, &[set]).expect_err(set);
        assert!(err.contains(message), "--set {set}: expected {message:?} in:\n{err}");
    }
}
