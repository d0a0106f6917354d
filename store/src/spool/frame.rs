//! One spool record as it sits on disk: a line `<crc32> <settlement JSON>\n`, the
//! CRC-32 (IEEE, 8 lowercase hex digits) taken over the JSON bytes.
//!
//! serde_json never writes a raw newline (newlines inside strings are escaped), so the
//! newline delimits records by itself, a reader resynchronises after a damaged record at
//! the next one, and the file stays greppable by charge id. A line cut short by a crash
//! lacks its newline; a line damaged in place, or two that ran together, fails its
//! checksum. Pure: no I/O here.

use crate::{Settlement, StoreError};

/// Hex digits of the checksum, then one space.
const PREFIX: usize = 9;

/// The line for `s`, newline included.
pub fn encode(s: &Settlement) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(s).map_err(|e| StoreError::Spool(format!("encode a settlement: {e}")))?;
    let mut line = Vec::with_capacity(PREFIX + json.len() + 1);
    line.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// The settlement of one line (without its newline), or why it cannot be trusted.
pub fn decode(line: &[u8]) -> Result<Settlement, String> {
    let (head, json) = match line.split_at_checked(PREFIX) {
        Some((head, json)) if head[PREFIX - 1] == b' ' => (&head[..PREFIX - 1], json),
        _ => return Err("no checksum prefix".into()),
    };
    let crc = std::str::from_utf8(head)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("checksum is not 8 hex digits")?;
    if crc != crc32fast::hash(json) {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(json).map_err(|e| format!("checksum ok but not a settlement: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::tests::settlement;

    fn body(line: &[u8]) -> &[u8] {
        &line[..line.len() - 1]
    }

    #[test]
    fn round_trips_one_line() {
        let s = settlement("a\nb");
        let line = encode(&s).unwrap();
        assert_eq!(
            line.iter().filter(|b| **b == b'\n').count(),
            1,
            "one newline, at the end"
        );
        assert_eq!(decode(body(&line)), Ok(s));
    }

    #[test]
    fn a_damaged_or_merged_line_fails_its_checksum() {
        let line = encode(&settlement("a")).unwrap();
        let mut flipped = body(&line).to_vec();
        let i = flipped.len() / 2;
        flipped[i] ^= 0x20;
        assert_eq!(decode(&flipped), Err("checksum mismatch".into()));
        // A torn record followed by a whole one, as an append after a crash would leave them.
        let mut merged = body(&line)[..20].to_vec();
        merged.extend_from_slice(body(&encode(&settlement("b")).unwrap()));
        assert!(decode(&merged).is_err());
        assert_eq!(decode(b"{\"team\":\"t\"}"), Err("no checksum prefix".into()));
        assert_eq!(decode(b"zzzzzzzz {}"), Err("checksum is not 8 hex digits".into()));
    }

    #[test]
    fn a_valid_checksum_over_the_wrong_shape_is_still_refused() {
        let json = br#"{"team":"t"}"#;
        let mut line = format!("{:08x} ", crc32fast::hash(json)).into_bytes();
        line.extend_from_slice(json);
        assert!(
            decode(&line)
                .unwrap_err()
                .starts_with("checksum ok but not a settlement")
        );
    }
}
