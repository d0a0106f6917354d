//! The bundled Valkey as the chart renders it, run for real: `redis-server` started with the
//! rendered `valkey.conf` and the StatefulSet's arguments, the test doing the kubelet's
//! `$(REDIS_PASSWORD)` expansion with the generated Secret. Only Tally's ACL user logs in; it
//! runs the store's real Lua scripts and reads and nothing else; a full Redis refuses writes
//! (noeviction); with `redis.tls` it serves TLS only, with a certificate for its Service name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;
use tally_config::keys::{self, Scope};
use tally_config::money::Nanos;
use tally_store::redis::RedisStore;
use tally_store::{Budget, ReserveOutcome, ReserveRequest, SettleOutcome, Settlement};
use tally_tests::fixtures::process::{OwnedProcess, free_port, path_arg, wait_until};
use tally_tests::fixtures::tools;

use crate::render::{
    documents, env_var, find, get, output, pod_spec, render, report, secret_data, strs, write_secret_files,
};

/// Tally's ACL user in the bundled Redis.
const USER: &str = "tally";
/// An administrator the test adds on the command line, only to read the configuration back and
/// to shrink `maxmemory`; the chart renders no such user.
const ADMIN: (&str, &str) = ("test-admin", "test-admin-secret");
/// The name clients use for the bundled Redis (the Service's DNS name).
const SERVICE_HOST: &str = "tally-redis.tally.svc.cluster.local";

/// A `redis-server` running the chart's rendered configuration on a loopback port.
pub struct RenderedValkey {
    _process: OwnedProcess,
    pub port: u16,
    /// The generated password in the rendered Secret `tally-redis`.
    pub password: String,
    /// The rendered CA (`redis.tls`).
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl RenderedValkey {
    async fn start(values: Option<&str>) -> RenderedValkey {
        RenderedValkey::from_docs(&documents(&render(values, &[]))).await
    }

    /// The bundled Valkey of one rendering (`docs`).
    pub async fn from_docs(docs: &[Value]) -> RenderedValkey {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let ca = write_tls_files(docs, dir.path());
        let config = dir.path().join("valkey.conf");
        let rendered = get(docs, "ConfigMap", "tally-redis")["data"]["valkey.conf"]
            .as_str()
            .expect("valkey.conf");
        std::fs::write(&config, loopback_config(rendered, dir.path(), port)).expect("write valkey.conf");
        let password = String::from_utf8(secret_data(docs, "tally-redis", "password")).expect("UTF-8");
        let mut cmd = Command::new(tools::redis_server());
        cmd.args(server_args(docs, &config, &password));
        cmd.args(["--user", ADMIN.0, "on", &format!(">{}", ADMIN.1), "~*", "&*", "+@all"]);
        let process = OwnedProcess::spawn("redis-server (rendered)", cmd).expect("start redis-server");
        let up = wait_until(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        assert!(up, "redis-server did not listen on {port} within 10 s");
        RenderedValkey {
            _process: process,
            port,
            password,
            ca,
            _dir: dir,
        }
    }

    fn url(&self, user: &str) -> String {
        format!("redis://{user}@127.0.0.1:{}/", self.port)
    }

    /// A connection logged in as `user` with `password` (none: anonymous).
    async fn connect(
        &self,
        user: &str,
        password: Option<&str>,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let url = match password {
            Some(p) => format!("redis://{user}:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        };
        redis::Client::open(url)?.get_multiplexed_async_connection().await
    }

    async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.connect(ADMIN.0, Some(ADMIN.1)).await.expect("test admin logs in")
    }
}

/// The rendered configuration, moved to loopback: `bind`, ports, data dir and certificate paths.
/// Every line it moves must be in the rendering, so a renamed directive fails here.
fn loopback_config(rendered: &str, dir: &Path, port: u16) -> String {
    let root = path_arg(dir);
    let moves = [
        ("bind * -::*", "bind 127.0.0.1".to_string()),
        ("dir /data", format!("dir {root}")),
        ("port 6379", format!("port {port}")),
        ("tls-port 6379", format!("tls-port {port}")),
    ];
    for (from, _) in &moves[..2] {
        assert!(
            rendered.lines().any(|l| l == *from),
            "valkey.conf lost {from:?}:\n{rendered}"
        );
    }
    let moved = |line: &str| match moves.iter().find(|(from, _)| line == *from) {
        Some((_, to)) => to.clone(),
        None => line.replace("/etc/valkey/tls/", &format!("{root}/tls/")),
    };
    let lines: Vec<String> = rendered.lines().map(moved).collect();
    assert!(
        lines.iter().any(|l| l.ends_with(&format!("port {port}"))),
        "valkey.conf names no port 6379:\n{rendered}"
    );
    lines.join("\n") + "\n"
}

/// The StatefulSet's arguments with the config path moved and `$(REDIS_PASSWORD)` expanded, as
/// the kubelet does from the container's environment (which must take it from the Secret).
fn server_args(docs: &[Value], config: &Path, password: &str) -> Vec<String> {
    let container = &pod_spec(docs, "StatefulSet", "tally-redis")["containers"][0];
    let env = env_var(container, "REDIS_PASSWORD");
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("tally-redis"),
        "the password comes from the generated Secret"
    );
    let args = strs(&container["args"]);
    assert_eq!(args.first(), Some(&"/etc/valkey/valkey.conf"), "{args:?}");
    std::iter::once(path_arg(config))
        .chain(args[1..].iter().map(|a| a.replace("$(REDIS_PASSWORD)", password)))
        .collect()
}

/// Writes the rendered `tally-redis-tls` Secret's files under `dir/tls/`; returns the CA's path.
fn write_tls_files(docs: &[Value], dir: &Path) -> Option<PathBuf> {
    find(docs, "Secret", "tally-redis-tls")?;
    write_secret_files(docs, "tally-redis-tls", &dir.join("tls"));
    Some(dir.join("tls/ca.crt"))
}

/// The error of a command, or a panic if it succeeded.
async fn refused(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query_async::<redis::Value>(conn).await {
        Ok(v) => panic!("{args:?} succeeded for Tally's ACL user: {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bundled_redis_admits_only_tallys_acl_user() {
    let valkey = RenderedValkey::start(None).await;
    let mut anonymous = valkey.connect("", None).await.expect("TCP connection");
    let err = redis::cmd("PING")
        .query_async::<String>(&mut anonymous)
        .await
        .expect_err("an anonymous PING must be refused");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    assert!(
        valkey.connect("default", Some(&valkey.password)).await.is_err(),
        "the default user is off"
    );
    assert!(
        valkey.connect(USER, Some("not-the-password")).await.is_err(),
        "a wrong password is refused"
    );
    let mut tally = valkey
        .connect(USER, Some(&valkey.password))
        .await
        .expect("Tally logs in");
    assert_eq!(
        redis::cmd("PING").query_async::<String>(&mut tally).await.unwrap(),
        "PONG"
    );
}

#[tokio::test]
async fn tallys_user_runs_the_store_and_is_refused_everything_else() {
    let valkey = RenderedValkey::start(None).await;
    let store = RedisStore::connect(&valkey.url(USER), false, Some(&valkey.password), None)
        .await
        .expect("the store connects as Tally's user");
    let counter = keys::counter("team-a", "2026-12", &Scope::Team);
    charge_one_call(&store, &counter).await;
    let spent = store.counters(&counter).await.expect("counters (HMGET)").spent;
    assert_eq!(spent, Nanos(1_500));

    let mut tally = valkey.connect(USER, Some(&valkey.password)).await.unwrap();
    let (ledger, counter) = (keys::ledger("team-a"), counter.as_str());
    let ledger = ledger.as_str();
    for read in [
        vec!["HGETALL", counter],
        vec!["XRANGE", ledger, "-", "+"],
        vec!["XREVRANGE", ledger, "+", "-"],
    ] {
        let mut cmd = redis::cmd(read[0]);
        cmd.arg(&read[1..]);
        let reply: redis::Value = cmd
            .query_async(&mut tally)
            .await
            .unwrap_or_else(|e| panic!("{read:?}: {e}"));
        assert_ne!(reply, redis::Value::Nil, "{read:?}");
    }
    let script = "return redis.call('DEL', KEYS[1])";
    let forbidden: [&[&str]; 12] = [
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        &["KEYS", "*"],
        &["MODULE", "LIST"],
        &["ACL", "LIST"],
        &["DEL", counter],
        &["HSET", "other:key", "f", "1"],
        &["SCRIPT", "FLUSH"],
        &["BGREWRITEAOF"],
        &["EVAL", script, "1", counter],
    ];
    for args in forbidden {
        let err = refused(&mut tally, args).await;
        assert!(
            err.contains("no permissions") || err.contains("can't run this command"),
            "{args:?}: {err}"
        );
    }
}

/// Reserves and settles one call of 1,500 nano-USD on `counter` through the store's Lua scripts.
async fn charge_one_call(store: &RedisStore, counter: &str) {
    let outcome = store
        .reserve(&reservation(counter, "charge-1"))
        .await
        .expect("reserve (EVALSHA)");
    assert!(matches!(outcome, ReserveOutcome::Reserved { .. }), "{outcome:?}");
    let settled = store
        .settle(&settlement(counter), 1000)
        .await
        .expect("settle (EVALSHA)");
    assert!(matches!(settled, SettleOutcome::Settled { .. }), "{settled:?}");
}

/// A reservation of 2,000 nano-USD against a 1,000,000 nano-USD team budget on `counter`.
fn reservation(counter: &str, charge_id: &str) -> ReserveRequest {
    ReserveRequest {
        team: "team-a".into(),
        charge_id: charge_id.into(),
        amount: Nanos(2_000),
        budgets: vec![Budget {
            key: counter.to_string(),
            label: "team \"team-a\"".into(),
            limit: Some(Nanos(1_000_000)),
            enforce: true,
        }],
        now_ms: 1_765_000_000_000,
        ttl: Duration::from_secs(60),
        tentative: false,
    }
}

fn settlement(counter: &str) -> Settlement {
    let record = serde_json::json!({
        "requestId": "req-1", "chargeId": "charge-1", "time": "2026-12-01T00:00:00Z",
        "operation": "Converse", "modelId": "amazon.nova-micro-v1:0", "model": "amazon.nova-micro-v1:0",
        "region": "us-east-1", "team": "team-a", "inputTokens": 10, "outputTokens": 5,
        "cacheReadTokens": 0, "cacheWrite5mTokens": 0, "cacheWrite1hTokens": 0, "latencyMs": 3,
        "status": 200, "outcome": "ok", "costNanos": 1500, "costUsd": "0.0000015", "priceSource": "test"
    });
    Settlement {
        team: "team-a".into(),
        charge_id: "charge-1".into(),
        cost: Nanos(1_500),
        counters: vec![counter.to_string()],
        count_request: true,
        team_limit: Some(Nanos(1_000_000)),
        record: serde_json::from_value(record).expect("a ledger record"),
    }
}

#[tokio::test]
async fn a_full_bundled_redis_refuses_writes_instead_of_evicting() {
    let valkey = RenderedValkey::start(None).await;
    let mut admin = valkey.admin().await;
    for (setting, expected) in [
        ("maxmemory", "805306368"),
        ("maxmemory-policy", "noeviction"),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
    ] {
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(setting)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(got.get(1).map(String::as_str), Some(expected), "{setting}");
    }
    let store = RedisStore::connect(&valkey.url(USER), false, Some(&valkey.password), None)
        .await
        .expect("connect");
    let counter = keys::counter("team-a", "2026-12", &Scope::Team);
    charge_one_call(&store, &counter).await;

    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = store
        .reserve(&reservation(&counter, "charge-2"))
        .await
        .expect_err("a full Redis must refuse the reservation");
    assert!(err.to_string().contains("OOM"), "refused for memory: {err}");
    let kept = store.counters(&counter).await.expect("reads still work");
    assert_eq!(kept.spent, Nanos(1_500), "nothing was evicted");
}

#[tokio::test]
async fn bundled_redis_over_tls_serves_only_tls_for_its_service_name() {
    let valkey = RenderedValkey::start(Some("redis-tls.yaml")).await;
    let ca = valkey.ca.as_ref().expect("redis.tls renders a certificate");
    let cli = |tls: bool| {
        let mut cmd = Command::new(tools::cached_tool("redis-cli", "redis.sh"));
        cmd.args(["-h", "127.0.0.1", "-p", &valkey.port.to_string(), "--user", USER])
            .env("REDISCLI_AUTH", &valkey.password);
        if tls {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        output(cmd.arg("PING"))
    };
    let over_tls = cli(true);
    assert_eq!(report(&over_tls).trim(), "PONG", "TLS with the rendered CA");
    assert_ne!(report(&cli(false)).trim(), "PONG", "plaintext must not be served");
    let handshake = output(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", valkey.port)])
            .args(["-verify_hostname", SERVICE_HOST, "-verify_return_error", "-CAfile"])
            .arg(ca)
            .stdin(std::process::Stdio::null()),
    );
    assert!(
        handshake.status.success() && report(&handshake).contains("Verify return code: 0 (ok)"),
        "the certificate must be valid for {SERVICE_HOST}:\n{}",
        report(&handshake)
    );
}

#[test]
fn acl_allows_every_command_tallys_code_sends() {
    let docs = documents(&render(None, &[]));
    let args = strs(&pod_spec(&docs, "StatefulSet", "tally-redis")["containers"][0]["args"]);
    let allowed: BTreeSet<String> = args
        .iter()
        .filter_map(|a| a.strip_prefix('+'))
        .map(str::to_lowercase)
        .collect();
    let sent = commands_in_source();
    assert!(sent.len() >= 10, "the source scan found too few commands: {sent:?}");
    for command in &sent {
        assert!(
            allowed.contains(command),
            "Tally sends {command} but the chart's ACL (tally.redis.aclCommands) does not allow it: {allowed:?}"
        );
    }
    // redis::Script::invoke runs EVALSHA, and SCRIPT LOAD when the script is not cached yet.
    for implied in ["evalsha", "script|load"] {
        assert!(allowed.contains(implied), "{implied}");
    }
    assert!(args.contains(&"~tally:*") && args.contains(&"-@all"), "{args:?}");
}

/// Commands named in the Rust sources of the store, ext_proc, operator and ledger exporter: the
/// `redis.call('X'` of Lua scripts and `cmd("X")` of direct calls, lowercased.
fn commands_in_source() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for crate_dir in ["store/src", "extproc/src", "operator/src", "export/src"] {
        for file in rust_files(&tools::workspace_root().join(crate_dir)) {
            let text = std::fs::read_to_string(&file).expect("read source");
            for marker in ["redis.call('", "cmd(\""] {
                for rest in text.split(marker).skip(1) {
                    let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
                    if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase()) {
                        found.insert(name.to_lowercase());
                    }
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
