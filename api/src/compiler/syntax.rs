//! The lexical rules of the API's strings: ids, model globs, regions, dates.
//!
//! Each check mirrors a schema `pattern` in [`crate::crd`] (a test holds them
//! together), so `tally render` refuses offline what the API server would
//! refuse, and returns a sentence saying why.

/// Why `s` is not a team id, if it is not.
pub fn check_team_id(s: &str) -> Result<(), String> {
    check_id(
        s,
        63,
        |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
        b"._-",
        "lowercase letters, digits",
    )
}

/// Checks an id made of `alnum` characters with `inner_punct` allowed inside.
fn check_id(
    s: &str,
    max_len: usize,
    alnum: impl Fn(u8) -> bool,
    inner_punct: &[u8],
    alnum_name: &str,
) -> Result<(), String> {
    let punct: String = inner_punct
        .iter()
        .map(|b| format!("'{}'", *b as char))
        .collect::<Vec<_>>()
        .join(", ");
    let rule =
        || format!("{s:?} is not a valid id: use {alnum_name} and {punct}, starting and ending with a letter or digit");
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err("must not be empty".to_string());
    }
    if bytes.len() > max_len {
        return Err(format!("{s:?} is longer than {max_len} characters"));
    }
    if !bytes.iter().all(|b| alnum(*b) || inner_punct.contains(b)) {
        return Err(rule());
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(rule());
    }
    Ok(())
}

/// Why `s` is not a tenant or workflow id (`ID_PATTERN`), if it is not.
pub fn check_tenant_or_workflow_id(s: &str) -> Result<(), String> {
    check_id(s, 128, |b| b.is_ascii_alphanumeric(), b"._:-", "letters, digits")
}

/// Why `s` is not a model-id glob, if it is not. `*` is the only wildcard;
/// the characters other glob dialects give a meaning are refused.
pub fn check_model_glob(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an empty pattern matches nothing: use \"*\" for every model".to_string());
    }
    if s.len() > 2048 {
        return Err(format!("pattern is longer than 2048 characters ({})", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '?' | '[' | ']' | '{' | '}') || c.is_whitespace())
    {
        return Err(format!(
            "{s:?} is not a valid model glob: {c:?} is not allowed (only `*`, matching any run of characters, is special)"
        ));
    }
    Ok(())
}

/// Why `s` is not an AWS region name (`us-east-1`), if it is not.
pub fn check_region(s: &str) -> Result<(), String> {
    let bad = || format!("{s:?} is not an AWS region name like \"us-east-1\"");
    let parts: Vec<&str> = s.split('-').collect();
    if s.len() > 32 || parts.len() < 3 {
        return Err(bad());
    }
    let (last, words) = parts.split_last().expect("at least 3 parts");
    let lower = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let ok =
        words[0].len() >= 2 && words.iter().all(lower) && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
    if ok { Ok(()) } else { Err(bad()) }
}

/// Why `s` is not a calendar date `YYYY-MM-DD`, if it is not.
pub fn check_date(s: &str) -> Result<(), String> {
    let shape_ok = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if shape_ok && s.parse::<jiff::civil::Date>().is_ok() {
        Ok(())
    } else {
        Err(format!("{s:?} is not a date like \"2025-11-20\""))
    }
}

/// Why `s` is not a workload identity, if it is not.
pub fn check_principal(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_string());
    }
    if s.len() > 2048 {
        return Err(format!("identity is longer than 2048 characters ({})", s.len()));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} contains whitespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::model_pricing::{DATE_PATTERN, REGION_PATTERN};
    use crate::crd::team_budget::{ID_PATTERN, MODEL_GLOB_PATTERN, TEAM_ID_PATTERN};

    /// The schema pattern (what the API server checks) and the compiler's check
    /// (what `tally render` checks) agree on every sample.
    fn agree(pattern: &str, max_len: usize, check: fn(&str) -> Result<(), String>, samples: &[&str]) {
        let re = regex::Regex::new(pattern).unwrap();
        for s in samples {
            let by_schema = re.is_match(s) && s.chars().count() <= max_len;
            assert_eq!(
                by_schema,
                check(s).is_ok(),
                "{pattern} vs check on {s:?}: {:?}",
                check(s)
            );
        }
    }

    #[test]
    fn team_ids() {
        let long = "a".repeat(64);
        let max = "a".repeat(63);
        let samples = [
            "search",
            "unknown",
            "a",
            "0",
            "data-science",
            "a.b_c",
            "Search",
            "-a",
            "a-",
            "a b",
            "{a}",
            "",
            &long,
            &max,
        ];
        agree(TEAM_ID_PATTERN, 63, check_team_id, &samples);
        assert!(check_team_id("Search").unwrap_err().contains("lowercase"));
    }

    #[test]
    fn tenant_and_workflow_ids() {
        let long = "a".repeat(129);
        let samples = [
            "acme",
            "Acme-Corp",
            "t:123",
            "a.b_c",
            "-a",
            "a:",
            "a/b",
            "a{b}",
            "",
            "ü",
            &long,
        ];
        agree(ID_PATTERN, 128, check_tenant_or_workflow_id, &samples);
    }

    #[test]
    fn model_globs() {
        let samples = [
            "*",
            "anthropic.*",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:*:*:application-inference-profile/*",
            "claude-3-?-sonnet",
            "anthropic.[ab]*",
            "{a,b}",
            "a b",
            "",
        ];
        agree(MODEL_GLOB_PATTERN, 2048, check_model_glob, &samples);
        assert!(check_model_glob("claude-?").unwrap_err().contains("'?'"));
    }

    #[test]
    fn regions() {
        let samples = [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "eu-central-2",
            "us-east",
            "US-EAST-1",
            "useast1",
            "u-east-1",
            "us--1",
            "us-east-1a",
            "",
        ];
        agree(REGION_PATTERN, 32, check_region, &samples);
    }

    #[test]
    fn dates() {
        for ok in ["2025-11-20", "2028-02-29"] {
            assert!(check_date(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2025-13-01",
            "2025-02-30",
            "20251120",
            "2025-1-20",
            "2025-11-20T00:00:00Z",
            "",
        ] {
            assert!(check_date(bad).is_err(), "{bad}");
        }
        // The shape is what the schema pattern checks; the calendar is on top.
        let re = regex::Regex::new(DATE_PATTERN).unwrap();
        assert!(re.is_match("2025-13-01") && check_date("2025-13-01").is_err());
    }

    #[test]
    fn principals() {
        assert!(check_principal("spiffe://cluster.local/ns/search/sa/api").is_ok());
        assert!(check_principal("").is_err());
        assert!(check_principal("spiffe://x y").is_err());
    }
}
