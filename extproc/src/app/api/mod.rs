//! The authenticated HTTP API (`--api-listen`): `/v1/ledger` (one team's records, streamed as
//! NDJSON in bounded pages) and `/v1/spend` (the current period's counters). Every request must
//! carry `Authorization: Bearer <token>` with the token in `--api-token-file`; a bearer token
//! from a mounted Secret needs no Kubernetes API access and no service account token.

mod ledger;
mod spend;
mod token;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

pub use ledger::{MAX_RECORDS, STORE_PAGE};
pub use token::TokenFile;
use token::Verdict;

use crate::exchange::Shared;

/// Ledger responses streaming at once; more are answered 429. With [`STORE_PAGE`] records
/// held per response, this bounds what the API holds in memory.
pub const MAX_LEDGER_STREAMS: usize = 4;

/// What the API's handlers share.
pub struct Api {
    shared: Arc<Shared>,
    token: TokenFile,
    ledger_streams: Arc<Semaphore>,
}

pub fn router(shared: Arc<Shared>, token: TokenFile) -> axum::Router {
    let api = Arc::new(Api {
        shared,
        token,
        ledger_streams: Arc::new(Semaphore::new(MAX_LEDGER_STREAMS)),
    });
    axum::Router::new()
        .route("/v1/ledger", get(ledger::ledger))
        .route("/v1/spend", get(spend::spend))
        .layer(axum::middleware::from_fn_with_state(api.clone(), authenticate))
        .with_state(api)
}

/// Lets a request through only with the current bearer token.
async fn authenticate(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    match api.token.check(presented) {
        Verdict::Allowed => next.run(request).await,
        Verdict::Refused => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Authorization: Bearer <token> required (the token of --api-token-file)\n",
        )
            .into_response(),
        Verdict::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the API token cannot be read; see the ext_proc's log\n",
        )
            .into_response(),
    }
}
