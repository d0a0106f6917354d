use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn date(s: &str) -> Date {
    s.parse().expect("date")
}

#[test]
fn a_utc_month_is_its_calendar_days() {
    let p = Period::parse("2026-11", "").unwrap();
    assert_eq!((p.from, p.to), (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z")));
    assert_eq!(p.days().len(), 30);
    assert_eq!(p.tz_name(), "UTC");
    assert_eq!(p.label, "2026-11");
}

#[test]
fn a_berlin_month_starts_at_23_utc_the_day_before() {
    let p = Period::parse("2026-11", "Europe/Berlin").unwrap();
    assert_eq!(p.from, ts("2026-10-31T23:00:00Z"));
    assert_eq!(p.to, ts("2026-11-30T23:00:00Z"));
    assert_eq!(p.days().first(), Some(&date("2026-11-01")));
    assert_eq!(p.days().last(), Some(&date("2026-11-30")));
    assert_eq!(p.day_of(ts("2026-10-31T23:30:00Z")), date("2026-11-01"));
    assert!(p.contains(ts("2026-10-31T23:00:00Z")));
    assert!(!p.contains(ts("2026-11-30T23:00:00Z")), "the end is exclusive");
}

#[test]
fn a_month_with_a_dst_change_is_an_hour_short_or_long() {
    // Berlin leaves summer time on 2026-10-25: October has 31 days and one extra hour.
    let oct = Period::parse("2026-10", "Europe/Berlin").unwrap();
    assert_eq!(oct.from, ts("2026-09-30T22:00:00Z"));
    assert_eq!(oct.to, ts("2026-10-31T23:00:00Z"));
    assert_eq!(oct.to.duration_since(oct.from).as_hours(), 31 * 24 + 1);
    // ... and enters it on 2026-03-29: that day has 23 hours.
    let day = Period::parse("2026-03-29", "Europe/Berlin").unwrap();
    assert_eq!(day.to.duration_since(day.from).as_hours(), 23);
    assert_eq!(day.days(), vec![date("2026-03-29")]);
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_at_its_first_instant() {
    // Santiago's clocks jump from 24:00 to 01:00 on 2026-09-06.
    let p = Period::parse("2026-09-06", "America/Santiago").unwrap();
    assert_eq!(p.from, ts("2026-09-06T04:00:00Z"));
    assert_eq!(p.to.duration_since(p.from).as_hours(), 23);
}

#[test]
fn a_range_of_days_includes_its_end() {
    let p = Period::parse("2026-11-01..2026-11-15", "America/New_York").unwrap();
    assert_eq!(p.from, ts("2026-11-01T04:00:00Z"));
    assert_eq!(p.to, ts("2026-11-16T05:00:00Z"), "EST from 2026-11-01");
    assert_eq!(p.days().len(), 15);
    let one = Period::parse("2026-02-28..2026-02-28", "").unwrap();
    assert_eq!(one.days(), vec![date("2026-02-28")]);
}

#[test]
fn bad_periods_say_what_is_accepted() {
    for (text, tz, needle) in [
        ("2026-13", "", "YYYY-MM"),
        ("November", "", "YYYY-MM"),
        ("2026-11-31", "", "not a date"),
        ("2026-11-05T10:00", "", "not a date"),
        ("2026-11-15..2026-11-01", "", "before it starts"),
        ("2026-11", "Mars/Olympus", "unknown time zone"),
    ] {
        let e = Period::parse(text, tz).unwrap_err();
        assert_eq!(e.text, text);
        assert!(e.to_string().contains(needle), "{text} in {tz:?}: {e}");
    }
}
