//! An open-loop load generator: requests are scheduled at a constant rate from a
//! start instant and each latency is measured from its *scheduled* send time, so
//! a slow server cannot slow the generator down and hide its own queueing
//! (no coordinated omission). Every run is bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tally_tests::fixtures::admin::status_and_body;
use tokio::sync::mpsc;

/// One request of the mix; the URI is `base + path`.
#[derive(Debug, Clone)]
pub struct Shape {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// HTTP/1.1 with a keep-alive pool large enough for any in-flight count we allow.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Requests per second.
    pub rate: f64,
    pub duration: Duration,
    /// Per-request bound; slower ones count as errors.
    pub timeout: Duration,
    /// Scheduled sends beyond this many in flight are dropped (counted), never queued.
    pub max_in_flight: usize,
}

/// Latency percentiles in milliseconds and what happened.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Outcome {
    pub target_rps: f64,
    pub achieved_rps: f64,
    pub scheduled: u64,
    pub ok: u64,
    /// Non-2xx answers, transport errors and timeouts.
    pub errors: u64,
    /// Sends skipped because `max_in_flight` requests were outstanding.
    pub dropped: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub first_error: Option<String>,
    /// Status code → count, for non-2xx answers.
    pub statuses: std::collections::BTreeMap<u16, u64>,
}

impl Outcome {
    /// Kept up: everything scheduled was answered successfully, on time, without a queue building up.
    pub fn sustained(&self) -> bool {
        self.errors == 0 && self.dropped == 0 && self.achieved_rps >= 0.95 * self.target_rps && self.p99_ms < 50.0
    }

    /// Kept up by issue #19's looser criterion: ≥ 99 % of the scheduled requests answered 2xx
    /// and ≥ 95 % of the target rate achieved, whatever the latency.
    pub fn keeps_up(&self) -> bool {
        self.ok as f64 >= 0.99 * self.scheduled as f64 && self.achieved_rps >= 0.95 * self.target_rps
    }
}

/// What the answered requests of a run came to.
struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    statuses: std::collections::BTreeMap<u16, u64>,
    last_done: Instant,
}

impl Tally {
    /// Counts one request scheduled at `due` and finished at `done`; only 2xx latencies
    /// go into the histogram.
    fn record(
        &mut self,
        result: Result<Result<u16, String>, tokio::time::error::Elapsed>,
        due: Instant,
        done: Instant,
        timeout: Duration,
    ) {
        match result {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                self.ok += 1;
                let micros = done.saturating_duration_since(due).as_micros() as u64;
                self.hist.saturating_record(micros.max(1));
            }
            Ok(Ok(status)) => {
                self.errors += 1;
                *self.statuses.entry(status).or_default() += 1;
                self.first_error.get_or_insert_with(|| format!("HTTP {status}"));
            }
            Ok(Err(e)) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
            Err(_) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("timeout after {timeout:?}"));
            }
        }
        self.last_done = self.last_done.max(done);
    }

    /// The run's outcome: rates over the time from `start` to the last answer (at least the
    /// run's duration), and latency percentiles in milliseconds.
    fn outcome(&self, spec: Spec, scheduled: u64, dropped: u64, start: Instant) -> Outcome {
        let elapsed = self
            .last_done
            .saturating_duration_since(start)
            .as_secs_f64()
            .max(spec.duration.as_secs_f64());
        let ms = |micros: u64| micros as f64 / 1000.0;
        let quantile = |q: f64| {
            if self.hist.is_empty() {
                0.0
            } else {
                ms(self.hist.value_at_quantile(q))
            }
        };
        Outcome {
            target_rps: spec.rate,
            achieved_rps: self.ok as f64 / elapsed,
            scheduled,
            ok: self.ok,
            errors: self.errors,
            dropped,
            p50_ms: quantile(0.5),
            p90_ms: quantile(0.9),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: if self.hist.is_empty() { 0.0 } else { ms(self.hist.max()) },
            first_error: self.first_error.clone(),
            statuses: self.statuses.clone(),
        }
    }
}

/// A thread that sends `(index, due instant)` for each of `total` requests when it is due,
/// `interval` apart from `start` (sub-millisecond precision, unlike the runtime's timer).
fn pacer(
    total: u64,
    interval: Duration,
    start: Instant,
) -> (std::thread::JoinHandle<()>, mpsc::UnboundedReceiver<(u64, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send((i, due)).is_err() {
                return;
            }
        }
    });
    (thread, rx)
}

/// Sends `spec.rate × spec.duration` requests cycling through `mix`, each when the pacer
/// says it is due; a send due while `max_in_flight` are outstanding is dropped.
pub async fn run(client: &HttpClient, base: &str, mix: &[Shape], spec: Spec) -> Outcome {
    let total = (spec.rate * spec.duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let (pacer, mut due_times) = pacer(total, Duration::from_secs_f64(1.0 / spec.rate), start);
    let tally = Arc::new(Mutex::new(Tally {
        hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
        ok: 0,
        errors: 0,
        first_error: None,
        statuses: Default::default(),
        last_done: start,
    }));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut dropped = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((i, due)) = due_times.recv().await {
        if in_flight.load(Ordering::Relaxed) >= spec.max_in_flight {
            dropped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let req = build(base, &mix[(i as usize) % mix.len()]);
        let (client, tally, in_flight) = (client.clone(), tally.clone(), in_flight.clone());
        tasks.spawn(async move {
            let result = tokio::time::timeout(spec.timeout, send(&client, req)).await;
            let done = Instant::now();
            tally
                .lock()
                .expect("results lock")
                .record(result, due, done, spec.timeout);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let _ = pacer.join();
    tally.lock().expect("results lock").outcome(spec, total, dropped, start)
}

fn build(base: &str, shape: &Shape) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(shape.method.clone())
        .uri(format!("{base}{}", shape.path));
    *req.headers_mut().expect("valid builder") = shape.headers.clone();
    req.body(Full::new(shape.body.clone())).expect("valid request")
}

/// Sends one request and reads the whole answer (a stream to its last event); the status.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<u16, String> {
    exchange(client, req).await.map(|(status, _)| status)
}

/// Sends one request and returns the status and the whole body.
pub async fn send_full(client: &HttpClient, base: &str, shape: &Shape) -> Result<(u16, Bytes), String> {
    exchange(client, build(base, shape)).await
}

async fn exchange(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let resp = client.request(req).await.map_err(|e| format!("request: {e:?}"))?;
    status_and_body(resp).await.map_err(|e| format!("body: {e}"))
}
