//! Redis settings (URL, password, cluster mode, private CA) reaching both the ext_proc and the
//! operator, with the password only ever coming from a Secret; the bundled Redis's own flags and
//! configuration (its behaviour on a real server is in `valkey`).

use crate::render::{arg, documents, env_var, get, named, pod_spec, render, strs};

#[test]
fn redis_settings_reach_both_components_without_exposing_the_password() {
    let docs = documents(&render(Some("external-redis.yaml"), &[]));
    let env_of =
        |deployment: &str, var: &str| env_var(&pod_spec(&docs, "Deployment", deployment)["containers"][0], var);
    // Both take the same Redis flags: the URL without credentials, the password from the Secret
    // (so it need not be URL-safe).
    for deployment in ["tally-extproc", "tally-operator"] {
        assert_eq!(
            env_of(deployment, "TALLY_REDIS_URL")["value"].as_str(),
            Some("rediss://tally@clustercfg.tally.abc123.use1.cache.amazonaws.com:6379"),
            "{deployment}"
        );
        assert_eq!(
            env_of(deployment, "TALLY_REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]["name"].as_str(),
            Some("tally-redis"),
            "{deployment}"
        );
    }
    // Cluster mode and the private CA reach both: the operator reads counters with the same client.
    for deployment in ["tally-extproc", "tally-operator"] {
        let pod = pod_spec(&docs, "Deployment", deployment);
        let args = strs(&pod["containers"][0]["args"]);
        assert!(args.contains(&"--redis-cluster"), "{deployment}: cluster mode flag");
        let ca = args.iter().position(|a| *a == "--redis-ca-file").map(|i| args[i + 1]);
        assert_eq!(ca, Some("/etc/tally-redis-ca/ca.crt"), "{deployment}");
        let mount = named(&pod["containers"][0]["volumeMounts"], "name", "redis-ca")
            .unwrap_or_else(|| panic!("{deployment}: CA mounted"));
        assert_eq!(mount["mountPath"].as_str(), Some("/etc/tally-redis-ca"));
        let volume = named(&pod["volumes"], "name", "redis-ca").unwrap_or_else(|| panic!("{deployment}: CA volume"));
        assert_eq!(volume["secret"]["secretName"].as_str(), Some("tally-redis-ca"));
    }
}

#[test]
fn the_bundled_redis_is_reached_as_tallys_acl_user() {
    let bundled = documents(&render(Some("bundled-redis.yaml"), &[]));
    let c = &pod_spec(&bundled, "Deployment", "tally-extproc")["containers"][0];
    let url = env_var(c, "TALLY_REDIS_URL");
    assert!(!url.is_null(), "url");
    assert_eq!(
        url["value"].as_str(),
        Some("redis://tally@tally-redis.tally.svc.cluster.local:6379"),
        "the bundled Redis's ACL user"
    );
    assert!(!strs(&c["args"]).contains(&"--redis-cluster"));
    let valkey = &pod_spec(&bundled, "StatefulSet", "tally-redis")["containers"][0];
    let args = strs(&valkey["args"]);
    let config = get(&bundled, "ConfigMap", "tally-redis")["data"]["valkey.conf"]
        .as_str()
        .unwrap_or_default();
    for line in [
        "appendonly yes",
        "maxmemory 768mb",
        "maxmemory-policy noeviction",
        "user default off",
    ] {
        assert!(
            config.lines().any(|l| l == line),
            "valkey.conf lacks {line:?}:\n{config}"
        );
    }
    assert_eq!(arg(valkey, "--user"), Some("tally"), "{args:?}");
    assert!(
        args.contains(&">$(REDIS_PASSWORD)"),
        "the ACL user's password from the Secret: {args:?}"
    );
    assert_eq!(
        env_var(valkey, "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]["key"].as_str(),
        Some("redis-password"),
        "redis.auth.secretKey of redis.auth.existingSecret"
    );

    let tls = documents(&render(Some("redis-tls.yaml"), &[]));
    let c = &pod_spec(&tls, "Deployment", "tally-extproc")["containers"][0];
    assert_eq!(
        env_var(c, "TALLY_REDIS_URL")["value"].as_str(),
        Some("rediss://tally@tally-redis.tally.svc.cluster.local:6379"),
        "the bundled Redis over TLS"
    );
    assert_eq!(
        arg(c, "--redis-ca-file"),
        Some("/etc/tally-redis-ca/ca.crt"),
        "the chart's CA verifies it"
    );
    let ca = named(
        &pod_spec(&tls, "Deployment", "tally-extproc")["volumes"],
        "name",
        "redis-ca",
    )
    .expect("CA volume");
    assert_eq!(ca["secret"]["secretName"].as_str(), Some("tally-redis-tls"));
}
