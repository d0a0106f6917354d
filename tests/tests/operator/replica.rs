//! Operator replicas run in-process with `controller::run`, each with its own metrics listener
//! and a shutdown signal, as the `tally operator` binary runs them.

use std::time::Duration;

use anyhow::{Context, Result};
use kube::Client;
use tally_operator::controller::config_map::DeliveryArgs;
use tally_operator::controller::{self, OperatorArgs};
use tally_store::args::RedisArgs;
use tokio::sync::oneshot;

use crate::NS;

/// A running operator replica; stop it with [`Replica::shutdown`].
pub struct Replica {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), controller::Error>>,
    pub metrics_port: u16,
}

/// A replica reading counters from a single Redis, watching every namespace.
pub async fn start_replica(client: Client, redis_url: &str, identity: &str) -> Result<Replica> {
    start_replica_with(client, Some(redis_url), false, identity, vec![]).await
}

/// A replica with a 500 ms status interval and a 3 s lease, so the tests see changes quickly.
pub async fn start_replica_with(
    client: Client,
    redis_url: Option<&str>,
    redis_cluster: bool,
    identity: &str,
    watch_namespaces: Vec<String>,
) -> Result<Replica> {
    let delivery = DeliveryArgs::default();
    start_replica_delivering(client, redis_url, redis_cluster, identity, watch_namespaces, delivery).await
}

/// [`start_replica_with`], publishing the config within `delivery`'s shard limits.
pub async fn start_replica_delivering(
    client: Client,
    redis_url: Option<&str>,
    redis_cluster: bool,
    identity: &str,
    watch_namespaces: Vec<String>,
    delivery: DeliveryArgs,
) -> Result<Replica> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let metrics_port = listener.local_addr()?.port();
    let args = OperatorArgs {
        config_map_name: "tally-config".into(),
        config_map_namespace: Some(NS.into()),
        kubeconfig: None,
        redis: RedisArgs {
            url: redis_url.map(Into::into),
            cluster: redis_cluster,
            ca_file: None,
            password: None,
        },
        status_interval: Duration::from_millis(500),
        metrics_listen: listener.local_addr()?,
        leader_election_namespace: Some(NS.into()),
        lease_name: "tally-operator".into(),
        lease_duration: Duration::from_secs(3),
        identity: Some(identity.into()),
        watch_namespaces,
        delivery,
        webhook: Default::default(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(args, client, listener, async move {
        let _ = stopped.await;
    }));
    Ok(Replica {
        stop: Some(stop),
        task,
        metrics_port,
    })
}

impl Replica {
    /// Signals a graceful shutdown and waits for `run` to return without error.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("operator did not stop in 20 s")???;
        Ok(())
    }
}
