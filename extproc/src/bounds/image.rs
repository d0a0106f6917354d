//! Images in a request: their size from the file header (PNG, JPEG, GIF,
//! WebP), and how many input tokens a model family can bill for that size.

/// Width and height in pixels.
pub type Size = (u64, u64);

/// The largest image side any format here can declare (JPEG and GIF use 16
/// bits, WebP 14 bits + 1, PNG 31): larger declared sizes are treated as unreadable.
const MAX_SIDE: u64 = 1 << 31;

/// Reads an image's size from its first bytes; `None` when the format is not
/// recognised or the header is cut or inconsistent.
pub fn size(b: &[u8]) -> Option<Size> {
    let s = png(b).or_else(|| gif(b)).or_else(|| webp(b)).or_else(|| jpeg(b))?;
    (s.0 > 0 && s.1 > 0 && s.0 <= MAX_SIDE && s.1 <= MAX_SIDE).then_some(s)
}

fn be16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?)))
}

fn le16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?)))
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?)))
}

fn le24(b: &[u8], at: usize) -> Option<u64> {
    let x = b.get(at..at + 3)?;
    Some(u64::from(x[0]) | u64::from(x[1]) << 8 | u64::from(x[2]) << 16)
}

fn png(b: &[u8]) -> Option<Size> {
    // Signature, then the IHDR chunk: length, "IHDR", width, height.
    (b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16)? == b"IHDR").then_some(())?;
    Some((be32(b, 16)?, be32(b, 20)?))
}

fn gif(b: &[u8]) -> Option<Size> {
    (b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")).then_some(())?;
    Some((le16(b, 6)?, le16(b, 8)?))
}

fn webp(b: &[u8]) -> Option<Size> {
    (b.get(0..4)? == b"RIFF" && b.get(8..12)? == b"WEBP").then_some(())?;
    match b.get(12..16)? {
        // Lossy: a key frame's start code, then 14-bit width and height.
        b"VP8 " => {
            (b.get(23..26)? == [0x9d, 0x01, 0x2a]).then(|| Some((le16(b, 26)? & 0x3fff, le16(b, 28)? & 0x3fff)))?
        }
        // Lossless: signature byte, then 14 bits each of width-1 and height-1.
        b"VP8L" => {
            (*b.get(20)? == 0x2f).then_some(())?;
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some((u64::from(bits & 0x3fff) + 1, u64::from((bits >> 14) & 0x3fff) + 1))
        }
        // Extended: 24-bit canvas width-1 and height-1.
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

fn jpeg(b: &[u8]) -> Option<Size> {
    (b.get(0..2)? == [0xff, 0xd8]).then_some(())?;
    let mut at = 2;
    loop {
        // Markers may be padded with fill bytes 0xff.
        while *b.get(at)? == 0xff && *b.get(at + 1)? == 0xff {
            at += 1;
        }
        (*b.get(at)? == 0xff).then_some(())?;
        let marker = *b.get(at + 1)?;
        match marker {
            // Start-of-frame markers (not DHT 0xc4, JPG 0xc8, DAC 0xcc): height, then width.
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                return Some((be16(b, at + 7)?, be16(b, at + 5)?));
            }
            // Markers without a length.
            0xd0..=0xd9 | 0x01 => at += 2,
            _ => at += 2 + usize::try_from(be16(b, at + 2)?).ok()?,
        }
    }
}

/// How a model family bills an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Claude: (width × height) / 750 tokens, after scaling the long edge down to 1,568 px.
    Anthropic,
    /// Any other model (Nova bills about one token per 500–700 px): one token
    /// per 400 px, unscaled.
    Other,
}

impl Family {
    pub fn of(model: &str) -> Family {
        if model.contains("anthropic.") {
            Family::Anthropic
        } else {
            Family::Other
        }
    }

    /// An upper bound on the input tokens of one image of `size`.
    pub fn image_tokens(self, (w, h): Size) -> u64 {
        let pixels = w.saturating_mul(h);
        match self {
            // Claude scales the long edge to 1,568 px at most: 1,568² / 750 = 3,279.
            Family::Anthropic => pixels.div_ceil(750).min(3_279),
            Family::Other => pixels.div_ceil(400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0]);
        b
    }

    #[test]
    fn reads_the_size_of_every_format() {
        assert_eq!(size(&png_of(1024, 768)), Some((1024, 768)));
        assert_eq!(size(b"GIF89a\x40\x01\xf0\x00"), Some((320, 240)));
        // JPEG: SOI, an APP0 segment to skip, then SOF0 with height 480, width 640.
        let jpeg = [
            &[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00][..],
            &[0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0xe0, 0x02, 0x80, 0x03],
        ]
        .concat();
        assert_eq!(size(&jpeg), Some((640, 480)));
        let mut lossy = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
        lossy.extend([0x20, 0x03, 0x58, 0x02]);
        assert_eq!(size(&lossy), Some((800, 600)));
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        extended.extend([0xff, 0x0f, 0x00, 0x37, 0x04, 0x00]);
        assert_eq!(size(&extended), Some((4096, 1080)));
    }

    #[test]
    fn unreadable_headers_have_no_size() {
        assert_eq!(size(b""), None);
        assert_eq!(size(b"not an image"), None);
        assert_eq!(size(&png_of(0, 10)), None);
        assert_eq!(size(&png_of(1024, 768)[..20]), None);
        // a JPEG whose segments run off the end
        assert_eq!(size(&[0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]), None);
    }

    #[test]
    fn families_bound_image_tokens() {
        assert_eq!(Family::of("us.anthropic.claude-haiku-4-5"), Family::Anthropic);
        assert_eq!(Family::Anthropic.image_tokens((1000, 1000)), 1_334);
        assert_eq!(Family::Anthropic.image_tokens((8000, 8000)), 3_279);
        assert_eq!(Family::of("amazon.nova-lite-v1:0"), Family::Other);
        assert_eq!(Family::Other.image_tokens((900, 900)), 2_025);
        assert_eq!(Family::Other.image_tokens((u64::MAX, 2)), u64::MAX.div_ceil(400));
    }
}
