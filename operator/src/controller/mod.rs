//! `tally operator`: the reconciler that runs in the cluster.
//!
//! Design: reflector-based, one whole-config reconcile. The config is small and every object can
//! change every team's view (a tenant or alias moving between objects), so any change to a
//! `TeamBudget` or `ModelPricing` recompiles everything with the compiler `tally render` uses
//! ([`tally_api::compiler::compile_lenient`]), publishes the result as gzip shard ConfigMaps and a
//! manifest naming them (only when its content hash changes, see [`config_map`]) and sets each
//! object's `Ready` condition. A second
//! pass, on every change and every `--status-interval`, reads each team's counters from Redis and
//! writes its status and events ([`status`]). Both passes run only on the replica holding the
//! leader Lease ([`leader`]).
//!
//! The decisions are pure functions in [`status`], [`config_map`] and [`leader`]; the other
//! rooms only move data between them and the API server and Redis: `run` (the probes server,
//! the election, leadership terms), `reconciler` (one term's passes, its settings, clients and
//! memory kept apart), `watch` and `trigger` (when a pass runs), `publish` (the ConfigMap),
//! `team_status` and `pricing_status` (the status subresources), `events`, and `counters`
//! (Redis reads). [`scopes`] decides the workflow and tenant lines of a team's status. Writes are server-side apply patches (field manager `tally-operator`): the
//! ConfigMap, and the `status` subresource of the custom resources (never their spec).
//!
//! RBAC it needs, exactly (shipped in `charts/tally/templates/operator-rbac.yaml`):
//! - `tally.dev` `teambudgets`, `modelpricings`: `list`, `watch`; their `/status`: `patch`
//! - `configmaps` (the config namespace): `get`, `create`, `patch`
//! - `events.k8s.io` `events`: `create` (namespaces of TeamBudgets)
//! - `coordination.k8s.io` `leases` (the election namespace): `get`, `create`, `update`

pub mod config_map;
pub mod leader;
pub mod status;
pub mod telemetry;

mod args;
mod clients;
mod counters;
mod error;
mod events;
mod failures;
mod pricing_status;
mod publish;
mod reconciler;
mod run;
mod scopes;
mod team_status;
mod trigger;
mod watch;

pub use args::{OperatorArgs, parse_duration};
pub use clients::FIELD_MANAGER;
pub use error::{Error, Result};
pub use failures::describe as describe_failure;
pub use run::{main, run};
