//! `GET /v1/ledger?team=T&after=CURSOR&limit=N`: one team's ledger as NDJSON, oldest first.
//!
//! The response is streamed: the store is read [`STORE_PAGE`] records at a time and each page
//! is written out before the next is read, so a response holds one page in memory however
//! many records it carries (at most [`MAX_RECORDS`]). When it stops at its limit, the last line
//! is `{"next":"<cursor>"}`: the id of the last record sent, the `after` of the next request.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tally_store::{LedgerEntry, StoreError};
use tokio::sync::OwnedSemaphorePermit;

use super::Api;
use crate::exchange::Shared;
use crate::policy::MAX_ID_LEN;

/// Records one response carries at most (and without `limit`).
pub const MAX_RECORDS: usize = 10_000;
/// Records read from the store per round trip: what one response holds in memory at a time.
pub const STORE_PAGE: usize = 500;

#[derive(serde::Deserialize)]
pub struct LedgerQuery {
    team: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn ledger(State(api): State<Arc<Api>>, Query(q): Query<LedgerQuery>) -> Response {
    let Some(team) = q.team.filter(|t| !t.is_empty() && t.len() <= MAX_ID_LEN) else {
        return (StatusCode::BAD_REQUEST, "team=T is required (1 to 128 characters)\n").into_response();
    };
    let limit = q.limit.unwrap_or(MAX_RECORDS).clamp(1, MAX_RECORDS);
    let Ok(permit) = api.ledger_streams.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many ledger reads at once; retry\n",
        )
            .into_response();
    };
    let mut reader = Reader {
        shared: api.shared.clone(),
        team,
        cursor: q.after,
        remaining: limit,
        finished: false,
        _permit: permit,
    };
    // The first page is read before answering, so a bad cursor or an unreachable store is a
    // status code rather than a cut stream.
    let first = match reader.read().await {
        Ok(page) => page,
        Err(e @ StoreError::Cursor(_)) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let first = reader.chunk(first);
    let rest = futures::stream::unfold(reader, Reader::next_chunk);
    let body = futures::StreamExt::chain(futures::stream::iter([Ok(first)]), rest);
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

/// One response's walk through a team's ledger.
struct Reader {
    shared: Arc<Shared>,
    team: String,
    /// Id of the last record sent (or the request's `after`).
    cursor: Option<String>,
    /// Records this response may still send.
    remaining: usize,
    finished: bool,
    /// Held until the response ends: bounds how many ledger reads run at once.
    _permit: OwnedSemaphorePermit,
}

impl Reader {
    fn asked(&self) -> usize {
        self.remaining.min(STORE_PAGE)
    }

    async fn read(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let asked = self.asked();
        self.shared
            .store
            .ledger_page(&self.team, self.cursor.as_deref(), asked)
            .await
    }

    /// The NDJSON lines of `page`, and the `next` line when this response ends at its limit.
    fn chunk(&mut self, page: Vec<LedgerEntry>) -> Bytes {
        let full = page.len() == self.asked();
        self.remaining -= page.len();
        let mut out = String::with_capacity(page.iter().map(|e| e.json.len() + 1).sum::<usize>() + 64);
        for entry in &page {
            out.push_str(&entry.json);
            out.push('\n');
        }
        if let Some(last) = page.into_iter().next_back() {
            self.cursor = Some(last.id);
        }
        if !full {
            self.finished = true;
        } else if self.remaining == 0 {
            self.finished = true;
            let next = self.cursor.as_deref().unwrap_or_default();
            out.push_str(&serde_json::json!({ "next": next }).to_string());
            out.push('\n');
        }
        Bytes::from(out)
    }

    async fn next_chunk(mut self) -> Option<(Result<Bytes, StoreError>, Reader)> {
        if self.finished {
            return None;
        }
        match self.read().await {
            Ok(page) => {
                let chunk = self.chunk(page);
                Some((Ok(chunk), self))
            }
            Err(e) => {
                // The status line is gone: ending the body with an error makes the client
                // see a cut transfer instead of a short but complete-looking ledger.
                tracing::warn!(team = %self.team, error = %e, "ledger read failed mid-response");
                self.finished = true;
                Some((Err(e), self))
            }
        }
    }
}
