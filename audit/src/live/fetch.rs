//! Reads a running Tally's ledger API (`--api-listen`, `Authorization: Bearer <token>`):
//! the teams from `GET /v1/spend`, then each team's `GET /v1/ledger?team=T&after=CURSOR&limit=N`,
//! NDJSON with a last line `{"next":"<cursor>"}` while more may follow. An older
//! ext_proc without `/v1/spend` answers `GET /v1/ledger?limit=N` with one JSON
//! array of every team's records; that is read too. Plain HTTP: the API is
//! reached in-cluster or through `kubectl port-forward`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::formats::is_pagination;
use crate::{Error, Result};

/// Records asked for per page.
const PAGE: usize = 1000;
/// A bound on pages, so a server that keeps answering a cursor cannot loop us forever.
const MAX_PAGES: usize = 10_000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `http://host:port` or the full `…/v1/ledger` URL.
    pub url: String,
    pub team: Option<String>,
    pub token: Option<String>,
}

/// `…/v1/ledger` for a base URL.
pub fn ledger_url(url: &str) -> String {
    format!("{}/v1/ledger", api_base(url))
}

/// The API's base URL: `url` without a trailing `/v1/ledger` (and query).
pub fn api_base(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url).trim_end_matches('/');
    url.strip_suffix("/v1/ledger").unwrap_or(url).to_string()
}

fn page_url(base: &str, team: Option<&str>, after: Option<&str>) -> String {
    let mut params = vec![format!("limit={PAGE}")];
    if let Some(t) = team {
        params.push(format!("team={}", utf8_percent_encode(t, NON_ALPHANUMERIC)));
    }
    if let Some(a) = after {
        params.push(format!("after={}", utf8_percent_encode(a, NON_ALPHANUMERIC)));
    }
    format!("{base}/v1/ledger?{}", params.join("&"))
}

/// One page: its records and the cursor of the next, if any.
pub fn parse_page(body: &str) -> std::result::Result<(Vec<Value>, Option<String>), String> {
    if body.trim_start().starts_with('[') {
        let records: Vec<Value> = serde_json::from_str(body).map_err(|e| format!("not a JSON array: {e}"))?;
        return Ok((records, None));
    }
    let mut records = vec![];
    let mut next = None;
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not NDJSON: {e}: {line}"))?;
        if is_pagination(&v) {
            next = v["next"].as_str().map(str::to_string);
        } else {
            records.push(v);
        }
    }
    Ok((records, next))
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Every record the ledger API returns: of `q.team`, else of every team
/// `/v1/spend` lists, following cursors.
pub async fn records(q: &Query) -> Result<Vec<Value>> {
    let base = api_base(&q.url);
    let fail = |reason: String| Error::Ledger {
        url: ledger_url(&base),
        reason,
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let token = q.token.as_deref();
    let teams: Vec<Option<String>> = match &q.team {
        Some(t) => vec![Some(t.clone())],
        None => match get(&client, &format!("{base}/v1/spend"), token).await {
            Ok(body) => teams(&body).map_err(fail)?.into_iter().map(Some).collect(),
            // An older ext_proc: one unpaged array of every team's records.
            Err(e) if e.starts_with("HTTP 404") => vec![None],
            Err(e) => return Err(fail(e)),
        },
    };
    let mut out = vec![];
    for team in teams {
        out.extend(
            team_records(&client, &base, team.as_deref(), token)
                .await
                .map_err(fail)?,
        );
    }
    Ok(out)
}

/// The team ids of a `/v1/spend` answer.
fn teams(body: &str) -> std::result::Result<Vec<String>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("/v1/spend is not JSON: {e}"))?;
    Ok(v["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["team"].as_str().map(str::to_string))
        .collect())
}

async fn team_records(
    client: &HttpClient,
    base: &str,
    team: Option<&str>,
    token: Option<&str>,
) -> std::result::Result<Vec<Value>, String> {
    let mut out = vec![];
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let body = get(client, &page_url(base, team, after.as_deref()), token).await?;
        let (records, next) = parse_page(&body)?;
        let empty = records.is_empty();
        out.extend(records);
        match next {
            Some(n) if !empty && after.as_deref() != Some(n.as_str()) => after = Some(n),
            _ => break,
        }
    }
    Ok(out)
}

async fn get(client: &HttpClient, url: &str, token: Option<&str>) -> std::result::Result<String, String> {
    let mut req = http::Request::get(url);
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "no answer within 30 s".to_string())?
        .map_err(|e| format!("{e} (is the ext_proc admin port reachable? only http:// is supported)"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        let hint = if status == http::StatusCode::UNAUTHORIZED {
            " (pass the API token with --token-file or TALLY_API_TOKEN_FILE)"
        } else {
            ""
        };
        return Err(format!("HTTP {status}{hint}: {}", text.trim()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ndjson_pages_and_the_older_array() {
        let (r, next) = parse_page("{\"requestId\":\"a\"}\n{\"requestId\":\"b\"}\n{\"next\":\"c2\"}\n").unwrap();
        assert_eq!((r.len(), next.as_deref()), (2, Some("c2")));
        let (r, next) = parse_page("[{\"requestId\":\"a\"}]").unwrap();
        assert_eq!((r.len(), next), (1, None));
        assert!(parse_page("<html>").is_err());
    }

    #[test]
    fn builds_page_urls() {
        assert_eq!(ledger_url("http://127.0.0.1:9090/"), "http://127.0.0.1:9090/v1/ledger");
        assert_eq!(api_base("http://h:1/v1/ledger?team=x"), "http://h:1");
        assert_eq!(
            page_url("http://h", Some("data science"), Some("1-0")),
            "http://h/v1/ledger?limit=1000&team=data%20science&after=1%2D0"
        );
        assert_eq!(
            teams(r#"{"teams":[{"team":"search"},{"team":"unknown"}]}"#).unwrap(),
            ["search", "unknown"]
        );
    }
}
