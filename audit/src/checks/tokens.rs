//! Token counts that cannot be priced right: input counted with cached tokens
//! on some records and without on others, and cache tokens in one lump.

use crate::field::Field;
use crate::fix::Fix;
use crate::formats::Sample;
use crate::observation::{Convention, Observation};
use crate::report::Finding;

/// How one record counted its input, when that can be told.
pub fn classify(o: &Observation) -> Option<Convention> {
    let input = o.count(Field::InputTokens)?;
    let cache = o.count(Field::CacheReadTokens).unwrap_or(0) + o.count(Field::CacheWriteTokens).unwrap_or(0);
    if cache == 0 || same_key(o) {
        return None;
    }
    let output = o.count(Field::OutputTokens).unwrap_or(0);
    match o.call.total_tokens {
        Some(total) if total == input + output + cache => Some(Convention::Exclusive),
        Some(total) if total == input + output => Some(Convention::Inclusive),
        // Input that includes the cache is at least the cache.
        _ if input < cache => Some(Convention::Exclusive),
        _ => None,
    }
}

/// The input tokens of `o` without cached tokens, by the record's own
/// convention, else the format's; `None` when it cannot be told.
pub fn exclusive_input(o: &Observation, declared: Option<Convention>) -> Option<u64> {
    let input = o.count(Field::InputTokens)?;
    let cache = o.count(Field::CacheReadTokens).unwrap_or(0) + o.count(Field::CacheWriteTokens).unwrap_or(0);
    match classify(o).or(declared) {
        Some(Convention::Inclusive) => Some(input.saturating_sub(cache)),
        Some(Convention::Exclusive) => Some(input),
        None if cache == 0 => Some(input),
        None => None,
    }
}

/// Records counting input both ways, or against the format's own convention.
pub fn convention(sample: &Sample) -> Option<Finding> {
    let declared = sample.profile.convention;
    let (mut incl, mut excl) = (vec![], vec![]);
    for o in &sample.observations {
        match classify(o) {
            Some(Convention::Inclusive) => incl.push(o),
            Some(Convention::Exclusive) => excl.push(o),
            None => {}
        }
    }
    let (odd, expected) = match declared {
        Some(Convention::Inclusive) if !excl.is_empty() => (excl, "includes"),
        Some(Convention::Exclusive) if !incl.is_empty() => (incl, "excludes"),
        // The smaller group is the odd one out.
        None if !incl.is_empty() && !excl.is_empty() => (if excl.len() <= incl.len() { excl } else { incl }, "mixes"),
        _ => return None,
    };
    let o = odd[0];
    let count = |f: Field| o.count(f).unwrap_or(0);
    let rule = match expected {
        "mixes" => "records count input both with and without cached tokens".to_string(),
        word => format!(
            "the format's input {word} cached tokens, but {} record(s) count it the other way",
            odd.len()
        ),
    };
    Some(Finding {
        fix: Fix::OneTokenConvention,
        text: format!(
            "{rule}: e.g. record {}: input {} with {} cache-read and {} cache-write tokens",
            o.record,
            count(Field::InputTokens),
            count(Field::CacheReadTokens),
            count(Field::CacheWriteTokens)
        ),
    })
}

fn same_key(o: &Observation) -> bool {
    match (o.get(Field::CacheReadTokens), o.get(Field::CacheWriteTokens)) {
        (Some(r), Some(w)) => r.key == w.key,
        _ => false,
    }
}

/// One key standing for both cache reads and cache writes.
pub fn split(sample: &Sample, field: Field) -> Option<Finding> {
    let lumped: Vec<&Observation> = sample.observations.iter().filter(|o| same_key(o)).collect();
    let o = lumped.first()?;
    let key = &o.get(field)?.key;
    Some(Finding {
        fix: Fix::SplitCacheTokens,
        text: format!(
            "cache tokens not split: `{key}` counts reads and writes together on {} record(s) (reads cost ~0.1× input, writes 1.25–2×)",
            lumped.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::observation::Found;

    fn usage(input: u64, read: u64, write: u64, total: Option<u64>) -> Observation {
        let mut o = Observation::new(1);
        o.set(Field::InputTokens, Some(Found::new("in", json!(input))));
        o.set(Field::OutputTokens, Some(Found::new("out", json!(10))));
        o.set(Field::CacheReadTokens, Some(Found::new("cr", json!(read))));
        o.set(Field::CacheWriteTokens, Some(Found::new("cw", json!(write))));
        o.call.total_tokens = total;
        o
    }

    #[test]
    fn totals_and_impossible_inputs_tell_the_convention() {
        assert_eq!(classify(&usage(100, 4000, 0, Some(4110))), Some(Convention::Exclusive));
        assert_eq!(classify(&usage(4100, 4000, 0, Some(4110))), Some(Convention::Inclusive));
        assert_eq!(classify(&usage(100, 4000, 0, None)), Some(Convention::Exclusive));
        assert_eq!(classify(&usage(5000, 4000, 0, None)), None);
        assert_eq!(classify(&usage(5000, 0, 0, None)), None);
    }

    #[test]
    fn exclusive_input_follows_the_record_then_the_format() {
        assert_eq!(
            exclusive_input(&usage(5000, 4000, 0, None), Some(Convention::Inclusive)),
            Some(1000)
        );
        assert_eq!(
            exclusive_input(&usage(5000, 4000, 0, None), Some(Convention::Exclusive)),
            Some(5000)
        );
        assert_eq!(
            exclusive_input(&usage(100, 4000, 0, None), Some(Convention::Inclusive)),
            Some(100)
        );
        assert_eq!(exclusive_input(&usage(5000, 4000, 0, None), None), None);
    }
}
