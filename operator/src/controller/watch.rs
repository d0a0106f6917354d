//! What the leader watches: a reflector per watched TeamBudget namespace (one for all namespaces
//! without `--watch-namespaces`) and one for ModelPricings. Their caches are what each pass
//! reads; their events become the [`Signal`]s the trigger waits on. The admission webhook reads
//! a set of its own on every replica (`run` starts them for it).

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use tally_api::crd::{ModelPricing, TeamBudget};

use super::trigger::{Signal, signals};

/// The reflector caches of one leadership term.
pub(super) struct Watches {
    teams: Vec<Store<TeamBudget>>,
    pricings: Store<ModelPricing>,
}

impl Watches {
    /// Starts the watches; stream `i` of the result reports `Synced(i)` once listed.
    pub(super) fn start(client: &Client, namespaces: &[String]) -> (Self, Vec<BoxStream<'static, Signal>>) {
        let team_apis: Vec<Api<TeamBudget>> = if namespaces.is_empty() {
            vec![Api::all(client.clone())]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let mut streams = vec![];
        let teams = team_apis.into_iter().map(|api| reflect(api, &mut streams)).collect();
        let pricings = reflect(Api::all(client.clone()), &mut streams);
        (Watches { teams, pricings }, streams)
    }

    /// The caches alone, for a reader that needs no signals: the stream only fills them (poll it
    /// in a task for as long as they are read).
    pub(super) fn start_caches(client: &Client, namespaces: &[String]) -> (Self, BoxStream<'static, ()>) {
        let (watches, streams) = Self::start(client, namespaces);
        (watches, futures::stream::select_all(streams).map(|_| ()).boxed())
    }

    /// Every watched TeamBudget, in `namespace/name` order.
    pub fn teams(&self) -> Vec<TeamBudget> {
        let mut teams: Vec<TeamBudget> = self
            .teams
            .iter()
            .flat_map(|s| s.state())
            .map(|t| (*t).clone())
            .collect();
        teams.sort_by_key(TeamBudget::key);
        teams
    }

    /// Every ModelPricing.
    pub fn pricings(&self) -> Vec<ModelPricing> {
        self.pricings.state().iter().map(|p| (**p).clone()).collect()
    }
}

/// A reflector over `api`; its signal stream is pushed onto `streams`.
fn reflect<K>(api: Api<K>, streams: &mut Vec<BoxStream<'static, Signal>>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    streams.push(signals(
        streams.len(),
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer),
    ));
    store
}

/// The admission webhook reads the same caches, shared rather than copied: it looks at a few of many.
impl crate::webhook::Cluster for Watches {
    async fn synced(&self, patience: std::time::Duration) -> bool {
        let all = async {
            for store in &self.teams {
                store.wait_until_ready().await.ok()?;
            }
            self.pricings.wait_until_ready().await.ok()
        };
        matches!(tokio::time::timeout(patience, all).await, Ok(Some(())))
    }

    fn teams(&self) -> Vec<std::sync::Arc<TeamBudget>> {
        self.teams.iter().flat_map(Store::state).collect()
    }

    fn pricings(&self) -> Vec<std::sync::Arc<ModelPricing>> {
        self.pricings.state()
    }
}
