//! Timestamps as sources write them: RFC 3339 with `Z` or an offset, Envoy's
//! `2026-05-04T09:12:01.201Z`, LiteLLM's naive `2026-05-04 09:12:01.201`
//! (UTC), epoch seconds or milliseconds.

use jiff::Timestamp;

/// A timestamp and the UTC offset it was written with (seconds; 0 for UTC or naive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub at: Timestamp,
    pub offset_seconds: i32,
}

pub fn parse(text: &str) -> Option<Stamp> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        let at = if n > 100_000_000_000 {
            Timestamp::from_millisecond(n).ok()?
        } else {
            Timestamp::from_second(n).ok()?
        };
        return Some(Stamp { at, offset_seconds: 0 });
    }
    if let Ok(z) = t.parse::<jiff::Zoned>() {
        return Some(Stamp {
            at: z.timestamp(),
            offset_seconds: z.offset().seconds(),
        });
    }
    if let Ok(at) = t.parse::<Timestamp>() {
        let offset_seconds = offset_of(t).unwrap_or(0);
        return Some(Stamp { at, offset_seconds });
    }
    let naive: jiff::civil::DateTime = t.replace(' ', "T").parse().ok()?;
    Some(Stamp {
        at: naive.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp(),
        offset_seconds: 0,
    })
}

/// The numeric offset at the end of an RFC 3339 string (`-07:00` → -25200).
fn offset_of(t: &str) -> Option<i32> {
    if t.ends_with('Z') || t.ends_with('z') {
        return Some(0);
    }
    let tail = &t[t.len().checked_sub(6)?..];
    let sign = match tail.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = tail[1..].split_once(':')?;
    Some(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))
}

/// `UTC−07:00`.
pub fn offset_label(seconds: i32) -> String {
    let sign = if seconds < 0 { '−' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_shapes() {
        let utc = parse("2026-05-04T09:12:01.201Z").unwrap();
        assert_eq!(utc.offset_seconds, 0);
        let local = parse("2026-05-04T02:12:01.201-07:00").unwrap();
        assert_eq!(local.offset_seconds, -7 * 3600);
        assert_eq!(local.at, utc.at);
        assert_eq!(parse("2026-05-04 09:12:01.201").unwrap().at, utc.at);
        assert_eq!(parse("1777885921").unwrap().offset_seconds, 0);
        assert!(parse("yesterday").is_none());
        assert_eq!(offset_label(-7 * 3600), "UTC−07:00");
    }
}
