//! Redis deployments other than one plain node: a Redis Cluster (every script
//! touches one team's keys only, the `{team}` hash tag) and `rediss://` with a
//! private CA.

use std::time::Duration;

use redis::AsyncCommands;
use tally_tests::fixtures::certs::loopback_ca_and_cert;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::{OwnedProcess, free_port, wait_until};
use tally_tests::fixtures::redis::{RedisCluster, server_command};

use crate::support::*;

/// Every script touches one team's keys only (`{team}` hash tag), so it runs on
/// Redis Cluster, whichever node owns the team's slot.
#[tokio::test]
async fn works_on_redis_cluster_with_teams_on_different_slots() {
    let cluster = RedisCluster::start().await;
    let seed = cluster.url();
    let other = cluster
        .team_on_another_node("search", &["ads", "billing", "chat", "docs", "edge", "fraud", "growth"])
        .await;
    let mut cfg = config(Some("100"));
    let mut second = cfg.teams[0].clone();
    second.team = other.into();
    second.source = format!("{other}/{other}");
    second.tenants = vec![];
    cfg.teams.insert(0, second);
    let svc = start_with(&cfg, &seed, FailMode::Closed, &["--redis-cluster"]).await;
    for team in ["search", other, "search", other, other] {
        let request = req_headers(&converse_path(SONNET_US), &[("x-team-id", team)], false);
        let out = svc
            .exchange(converse_call(
                request,
                br#"{"messages":[],"inferenceConfig":{"maxTokens":100}}"#,
            ))
            .await;
        assert_eq!(cost_header(&out[3]).as_deref(), Some(CONVERSE_COST_USD), "{team}");
    }
    let client = redis::cluster::ClusterClient::new(vec![seed.as_str()]).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    for (team, n) in [("search", 2), (other, 3)] {
        let spent: i64 = conn
            .hget(format!("tally:{{{team}}}:c:{month}:team"), "spent")
            .await
            .unwrap();
        assert_eq!(spent, n * CONVERSE_COST_NANOS, "{team}");
        let len: usize = conn.xlen(format!("tally:{{{team}}}:ledger")).await.unwrap();
        assert_eq!(len, n as usize);
    }

    svc.stop().await;
}

/// `rediss://`: the same scripts over TLS to a redis-server with a TLS port,
/// its certificate verified against a private CA given with `--redis-ca-file`.
#[tokio::test]
async fn works_over_tls_with_rediss_urls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    loopback_ca_and_cert(d, "srv").expect("test certificates");
    let port = free_port();
    let _redis = tls_redis(d, port).await;
    let url = format!("rediss://127.0.0.1:{port}/");
    let ca = d.join("ca.crt");
    let ca_flag = ca.to_str().expect("UTF-8 temp path");
    let svc = start_with(
        &config(Some("100")),
        &url,
        FailMode::Closed,
        &["--redis-ca-file", ca_flag],
    )
    .await;
    let out = one_converse(&svc, "tls-1").await;
    assert_eq!(cost_header(&out[3]).as_deref(), Some(CONVERSE_COST_USD));
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(&ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(url.as_str(), certs).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: usize = conn.xlen("tally:{search}:ledger").await.unwrap();
    assert_eq!(len, 1);
    svc.stop().await;
}

/// redis-server serving TLS only, on `port`, with the `srv` certificate in `dir`.
async fn tls_redis(dir: &std::path::Path, port: u16) -> OwnedProcess {
    let mut cmd = server_command(0, dir);
    cmd.current_dir(dir)
        .args(["--tls-port", &port.to_string(), "--appendonly", "no"])
        .args([
            "--tls-cert-file",
            "srv.crt",
            "--tls-key-file",
            "srv.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
        ]);
    let redis = OwnedProcess::spawn("redis-tls", cmd).unwrap();
    let up = wait_until(Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "TLS redis-server did not start");
    redis
}
