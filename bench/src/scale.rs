//! Scale: decision latency and ext_proc memory as the config grows to 100,000
//! teams, and memory per concurrent stream with 1,000 open ConverseStreams.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tally_config::money::Nanos;

use crate::load::{self, HttpClient, Outcome, Spec};
use crate::procs::{Spent as _, http_get, rss_kib_of, start_envoy, start_extproc};
use crate::{Args, mix};

#[derive(Debug, Clone, Serialize)]
pub struct TeamsRow {
    pub teams: usize,
    pub config_bytes: usize,
    pub startup_s: f64,
    pub rss_idle_mib: f64,
    pub rss_after_load_mib: f64,
    /// From the ext_proc's own `decision_duration_seconds` histogram over the run.
    pub decision_mean_ms: f64,
    /// Upper bound of the histogram bucket holding the 99th percentile.
    pub decision_p99_le_ms: f64,
    pub end_to_end: Outcome,
}

/// `(le, cumulative count)` of the decision histogram, plus sum and count.
fn decision_histogram(admin_port: u16) -> (Vec<(f64, f64)>, f64, f64) {
    let body = http_get(admin_port, "/metrics").map(|(_, b)| b).unwrap_or_default();
    let (mut buckets, mut sum, mut count) = (Vec::new(), 0.0, 0.0);
    for line in body.lines().filter(|l| l.contains("decision_duration_seconds")) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        if let Some(le) = key.split("le=\"").nth(1).and_then(|r| r.split('"').next()) {
            buckets.push((le.parse().unwrap_or(f64::INFINITY), value));
        } else if key.contains("_sum") {
            sum = value;
        } else if key.contains("_count") {
            count = value;
        }
    }
    (buckets, sum, count)
}

pub async fn teams_row(
    dir: &Path,
    client: &HttpClient,
    sim_port: u16,
    redis_port: u16,
    teams: usize,
    quick: bool,
    extproc_args: &[String],
) -> Result<TeamsRow> {
    let config = mix::config(teams, Nanos::parse_usd("1000000")?)?;
    let config_bytes = config.to_json_pretty().len();
    let started = Instant::now();
    let ext = start_extproc(
        dir,
        &format!("tally-extproc-{teams}-teams"),
        &config,
        Some(redis_port),
        extproc_args,
    )?;
    let startup_s = started.elapsed().as_secs_f64();
    let rss_idle_mib = ext.proc.rss_kib() as f64 / 1024.0;
    let (_envoy, port, _) = start_envoy(dir, &format!("envoy-{teams}-teams"), sim_port, Some(ext.grpc_port))?;
    // Spread the calls over the whole team list, 3,000 distinct teams at most.
    let distinct = teams.min(3000);
    let shapes: Vec<_> = (0..distinct)
        .map(|i| mix::converse(&mix::team_id(i * teams / distinct), mix::HAIKU, 120, 512))
        .collect();
    let base = format!("http://127.0.0.1:{port}");
    let warm = Spec {
        rate: 500.0,
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        max_in_flight: 2000,
    };
    load::run(client, &base, &shapes, warm).await;
    let (b0, s0, c0) = decision_histogram(ext.admin_port);
    let secs = if quick { 3 } else { 8 };
    let spec = Spec {
        rate: 1000.0,
        duration: Duration::from_secs(secs),
        timeout: Duration::from_secs(10),
        max_in_flight: 2000,
    };
    let end_to_end = load::run(client, &base, &shapes, spec).await;
    let (b1, s1, c1) = decision_histogram(ext.admin_port);
    let n = c1 - c0;
    let decision_mean_ms = if n > 0.0 { 1000.0 * (s1 - s0) / n } else { f64::NAN };
    let target = 0.99 * n;
    let decision_p99_le_ms = b1
        .iter()
        .zip(b0.iter().map(|b| b.1).chain(std::iter::repeat(0.0)))
        .find(|((_, after), before)| after - before >= target)
        .map_or(f64::NAN, |((le, _), _)| le * 1000.0);
    Ok(TeamsRow {
        teams,
        config_bytes,
        startup_s,
        rss_idle_mib,
        rss_after_load_mib: ext.proc.rss_kib() as f64 / 1024.0,
        decision_mean_ms,
        decision_p99_le_ms,
        end_to_end,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamsRow {
    pub concurrent: usize,
    pub events_per_stream: u32,
    pub event_delay_ms: u64,
    pub completed: usize,
    pub extproc_rss_base_mib: f64,
    pub extproc_rss_peak_mib: f64,
    pub extproc_kib_per_stream: f64,
    pub envoy_kib_per_stream: f64,
}

/// `concurrent` ConverseStreams held open together; peak RSS over the idle baseline.
pub async fn streams_row(
    dir: &Path,
    client: &HttpClient,
    sim_port: u16,
    redis_port: u16,
    concurrent: usize,
    (events, delay_ms): (u32, u64),
    extproc_args: &[String],
) -> Result<StreamsRow> {
    let name = format!("streams-{events}x{delay_ms}ms");
    let config = mix::config(10, Nanos::parse_usd("1000000")?)?;
    let ext = start_extproc(
        dir,
        &format!("tally-extproc-{name}"),
        &config,
        Some(redis_port),
        extproc_args,
    )?;
    let (envoy, port, _) = start_envoy(dir, &format!("envoy-{name}"), sim_port, Some(ext.grpc_port))?;
    let base = format!("http://127.0.0.1:{port}");
    // Warm both processes (connection pools, allocator arenas) with a few short streams.
    let short = mix::converse_stream(&mix::team_id(0), mix::NOVA_LITE, 50, None);
    for _ in 0..50 {
        let _ = load::send_full(client, &base, &short).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ext_base, envoy_base) = (ext.proc.rss_kib(), envoy.rss_kib());
    let shape = mix::converse_stream(&mix::team_id(1), mix::NOVA_LITE, 50, Some((events, delay_ms)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let (ext_pid, envoy_pid) = (
            ext.proc.pid().expect("the ext_proc runs"),
            envoy.pid().expect("Envoy runs"),
        );
        std::thread::spawn(move || {
            let (mut ext_peak, mut envoy_peak) = (0u64, 0u64);
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                ext_peak = ext_peak.max(rss_kib_of(ext_pid));
                envoy_peak = envoy_peak.max(rss_kib_of(envoy_pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            (ext_peak, envoy_peak)
        })
    };
    let results = futures::future::join_all(
        (0..concurrent).map(|_| tokio::time::timeout(Duration::from_secs(90), load::send_full(client, &base, &shape))),
    )
    .await;
    done.store(true, Ordering::Relaxed);
    let (ext_peak, envoy_peak) = sampler.join().expect("sampler thread");
    let completed = results.iter().filter(|r| matches!(r, Ok(Ok((200, _))))).count();
    let per = |peak: u64, base: u64| peak.saturating_sub(base) as f64 / concurrent as f64;
    Ok(StreamsRow {
        concurrent,
        events_per_stream: events,
        event_delay_ms: delay_ms,
        completed,
        extproc_rss_base_mib: ext_base as f64 / 1024.0,
        extproc_rss_peak_mib: ext_peak as f64 / 1024.0,
        extproc_kib_per_stream: per(ext_peak, ext_base),
        envoy_kib_per_stream: per(envoy_peak, envoy_base),
    })
}

/// The scale phase: decision latency and memory by team count, then memory per open stream.
pub async fn phase(
    args: &Args,
    client: &HttpClient,
    dir: &Path,
    sim_port: u16,
    redis_port: u16,
) -> Result<serde_json::Value> {
    eprintln!("\n== scale");
    let team_counts: &[usize] = if args.quick {
        &[10, 1000, 10_000]
    } else {
        &[10, 1000, 100_000]
    };
    let mut rows = Vec::new();
    for &n in team_counts {
        let row = teams_row(dir, client, sim_port, redis_port, n, args.quick, &args.extproc_args()).await?;
        eprintln!(
            "  {n} teams: rss {:.1} MiB, decision mean {:.3} ms",
            row.rss_after_load_mib, row.decision_mean_ms
        );
        rows.push(row);
    }
    print_teams(&rows);
    let mut streams = Vec::new();
    for shape in [(20u32, 150u64), (200, 15)] {
        let row = streams_row(dir, client, sim_port, redis_port, 1000, shape, &args.extproc_args()).await?;
        streams.push(row);
    }
    print_streams(&streams);
    Ok(serde_json::json!({"teams": rows, "streams": streams}))
}

fn print_teams(rows: &[TeamsRow]) {
    println!("\nScale: teams in the config (1000 req/s Converse spread over the teams)");
    println!(
        "{:>8} {:>11} {:>9} {:>10} {:>10} {:>11} {:>12} {:>8} {:>8}",
        "teams", "config MB", "start s", "RSS idle", "RSS load", "decide avg", "decide p99≤", "e2e p50", "e2e p99"
    );
    for r in rows {
        println!(
            "{:>8} {:>11.2} {:>9.2} {:>9.1}M {:>9.1}M {:>9.3}ms {:>10.3}ms {:>8.3} {:>8.3}",
            r.teams,
            r.config_bytes as f64 / 1e6,
            r.startup_s,
            r.rss_idle_mib,
            r.rss_after_load_mib,
            r.decision_mean_ms,
            r.decision_p99_le_ms,
            r.end_to_end.p50_ms,
            r.end_to_end.p99_ms
        );
    }
}

fn print_streams(rows: &[StreamsRow]) {
    println!("\nConcurrent ConverseStreams (1000 open at once; peak RSS over the idle baseline)");
    println!(
        "{:>8} {:>8} {:>9} {:>10} {:>12} {:>12} {:>14} {:>14}",
        "streams", "events", "every", "completed", "ext RSS base", "ext RSS peak", "ext KiB/stream", "envoy KiB/strm"
    );
    for r in rows {
        println!(
            "{:>8} {:>8} {:>7}ms {:>10} {:>11.1}M {:>11.1}M {:>14.1} {:>14.1}",
            r.concurrent,
            r.events_per_stream,
            r.event_delay_ms,
            r.completed,
            r.extproc_rss_base_mib,
            r.extproc_rss_peak_mib,
            r.extproc_kib_per_stream,
            r.envoy_kib_per_stream
        );
    }
}
