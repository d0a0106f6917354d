//! The config file is polled and swapped in while calls flow; an invalid file is
//! noticed and the old config kept. Health is served next to the processor.

use std::time::Duration;

use tally_config::wire;
use tally_tests::fixtures::extproc::FailMode;
use tally_tests::fixtures::process::wait_until;
use tally_tests::fixtures::redis::RedisServer;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::*;

#[tokio::test]
async fn config_is_hot_reloaded_and_an_invalid_file_keeps_the_old_one() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(None), &redis, FailMode::Open).await;
    // grpc.health.v1 is served next to the processor.
    let status = HealthClient::new(svc.channel())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.ext_proc.v3.ExternalProcessor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, ServingStatus::Serving as i32);
    assert!(svc.metrics().await.contains("tally_config_info{generation=\"test\"} 1"));

    std::fs::write(svc.config_path(), b"{\"version\": 1, \"teams\": [oops").unwrap();
    let rejected = wait_until(Duration::from_secs(5), || async {
        svc.metrics()
            .await
            .contains("tally_config_reloads_total{outcome=\"invalid\"} 1")
    })
    .await;
    assert!(rejected, "the invalid file is noticed");
    assert!(
        svc.metrics().await.contains("tally_config_info{generation=\"test\"} 1"),
        "old config kept"
    );
    // Calls still work under the old config.
    assert_eq!(one_converse(&svc, "after-invalid").await.len(), 4);

    let mut next = config(Some("0.000001"));
    next.generation = "v2".into();
    std::fs::write(svc.config_path(), next.to_json_pretty()).unwrap();
    let swapped = wait_until(Duration::from_secs(5), || async {
        svc.metrics().await.contains("tally_config_info{generation=\"v2\"} 1")
    })
    .await;
    assert!(swapped, "the new config is swapped in");
    // The new, tiny budget now applies.
    let out = one_converse(&svc, "after-v2").await;
    assert_eq!(refusal_status(out.last().unwrap()), Some(400));
    svc.stop().await;
}

/// The operator's delivery: `config.json` is a manifest naming gzip shards beside it. A set
/// with a shard still missing or of another generation is refused (the old config stays, the
/// `incomplete` outcome counts it); once every shard matches, the new config is swapped in.
#[tokio::test]
async fn a_sharded_config_is_swapped_in_only_once_its_set_is_complete() {
    let redis = RedisServer::start(false).await;
    let svc = start(&config(None), &redis, FailMode::Open).await;
    let dir = svc.config_path().parent().unwrap().to_path_buf();
    let mut next = config(Some("0.000001"));
    next.generation = "sharded".into();
    let encoded = wire::encode(&next, 128);
    assert!(encoded.shards.len() > 2, "{} shards", encoded.shards.len());
    let file = |i: usize| dir.join(&encoded.manifest.shards[i].file);
    // The manifest arrives before its shards, and one shard is of an older generation.
    std::fs::write(file(0), b"an older generation's bytes").unwrap();
    std::fs::write(svc.config_path(), encoded.manifest_json()).unwrap();
    let refused = wait_until(Duration::from_secs(5), || async {
        svc.metrics()
            .await
            .contains("tally_config_reloads_total{outcome=\"incomplete\"}")
    })
    .await;
    assert!(refused, "the incomplete set is noticed");
    for i in 1..encoded.shards.len() {
        std::fs::write(file(i), &encoded.shards[i]).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        svc.metrics().await.contains("tally_config_info{generation=\"test\"} 1"),
        "old config kept while shard 0 is of another generation"
    );
    assert_eq!(one_converse(&svc, "while-incomplete").await.len(), 4);

    std::fs::write(file(0), &encoded.shards[0]).unwrap();
    let swapped = wait_until(Duration::from_secs(5), || async {
        svc.metrics()
            .await
            .contains("tally_config_info{generation=\"sharded\"} 1")
    })
    .await;
    assert!(swapped, "the complete set is swapped in");
    let out = one_converse(&svc, "after-sharded").await;
    assert_eq!(refusal_status(out.last().unwrap()), Some(400));
    svc.stop().await;
}
