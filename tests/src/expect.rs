//! Reading what the system recorded (ledger records, Redis counters, Prometheus
//! text, `x-tally-*` headers) and computing what it should have recorded.
//!
//! Expected costs are computed here from prices the test writes out itself,
//! with the documented rule (sum every token class × price per 1M, round
//! half-up to the nano-USD once); nothing calls the code under test.

use serde_json::Value;

/// Prices of one model in nano-USD per 1M tokens: input, output, cache read, cache write 5m, cache write 1h.
pub type PricesNanos = [u64; 5];

/// Tokens of one call: input (non-cached), output, cache read, cache write 5m, cache write 1h.
pub type Tokens = [u64; 5];

/// `Σ tokens × price / 1M`, rounded half-up to the nano-USD.
pub fn cost_nanos(tokens: Tokens, prices: PricesNanos) -> i64 {
    let total: u128 = tokens
        .iter()
        .zip(prices)
        .map(|(t, p)| u128::from(*t) * u128::from(p))
        .sum();
    ((total + 500_000) / 1_000_000) as i64
}

/// A decimal USD string (`"0.0043175"`) as nano-USD; panics on anything else.
pub fn usd_to_nanos(s: &str) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(
        frac.len() <= 9 && frac.chars().all(|c| c.is_ascii_digit()),
        "not a nano-exact USD amount: {s:?}"
    );
    let n = int.parse::<i64>().unwrap_or_else(|_| panic!("not a USD amount: {s:?}")) * 1_000_000_000
        + format!("{frac:0<9}").parse::<i64>().expect("fraction digits");
    if neg { -n } else { n }
}

/// The ledger record with `requestId == id`.
pub fn record_for<'a>(ledger: &'a [Value], id: &str) -> &'a Value {
    ledger
        .iter()
        .find(|r| r["requestId"] == id)
        .unwrap_or_else(|| panic!("no ledger record with requestId {id:?} in {ledger:#?}"))
}

/// Sum of every Prometheus sample of `name` whose labels include all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if matches { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

/// The period key of a monthly UTC budget now (`2026-11`), computed independently of the ext_proc.
pub fn monthly_utc_key() -> String {
    jiff::Timestamp::now().strftime("%Y-%m").to_string()
}

/// The key of `team`'s monthly UTC counter of `scope` (`team`, `wf/<id>`, `tn/<id>`) now.
pub fn monthly_counter_key(team: &str, scope: &str) -> String {
    format!("tally:{{{team}}}:c:{}:{scope}", monthly_utc_key())
}

/// How many entries `team`'s ledger stream holds.
pub async fn ledger_len(conn: &mut redis::aio::MultiplexedConnection, team: &str) -> i64 {
    redis::cmd("XLEN")
        .arg(format!("tally:{{{team}}}:ledger"))
        .query_async(conn)
        .await
        .expect("XLEN")
}

/// Reads an integer field of a Redis hash (0 when absent).
pub async fn hash_field(conn: &mut redis::aio::MultiplexedConnection, key: &str, field: &str) -> i64 {
    let v: Option<i64> = redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(conn)
        .await
        .expect("HGET");
    v.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_once_half_up() {
        // 1200×1.1 + 300×5.5 + 4000×0.11 + 500×1.375 + 100×2.2 µ$ = 4317.5 µ$
        let us_haiku = [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000];
        assert_eq!(cost_nanos([1200, 300, 4000, 500, 100], us_haiku), 4_317_500);
        assert_eq!(cost_nanos([15, 0, 0, 0, 0], [35_000, 0, 0, 0, 0]), 1);
        assert_eq!(cost_nanos([14, 0, 0, 0, 0], [35_000, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn parses_usd_strings() {
        assert_eq!(usd_to_nanos("0.0043175"), 4_317_500);
        assert_eq!(usd_to_nanos("12"), 12_000_000_000);
        assert_eq!(usd_to_nanos("-0.000000001"), -1);
    }

    #[test]
    fn sums_samples_by_label_subset() {
        let text = "# TYPE x counter\nx_total{team=\"a\",model=\"m1\"} 2\nx_total{team=\"a\",model=\"m2\"} 3\nx_total{team=\"b\"} 7\n";
        assert_eq!(metric_sum(text, "x_total", &[("team", "a")]), 5.0);
        assert_eq!(metric_sum(text, "x_total", &[]), 12.0);
    }
}
