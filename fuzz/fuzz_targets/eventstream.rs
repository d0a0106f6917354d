//! The incremental event-stream decoder: raw bytes, or well-formed frames
//! (optionally with one byte flipped), split at fuzz-chosen points. Whatever
//! the split, it decodes exactly what one push of the whole stream decodes,
//! holds no more than it was given, and holds nothing after a corrupt frame.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tally_extproc::eventstream::StreamUsage;
use tally_fuzz::frames::{self, Corruption, FrameSpec};

#[derive(Arbitrary, Debug)]
enum Bytes {
    Raw(Vec<u8>),
    Frames(Vec<FrameSpec>, Option<Corruption>),
}

fuzz_target!(|input: (Bytes, Vec<u16>)| {
    let (bytes, cuts) = input;
    let stream = match bytes {
        Bytes::Raw(b) => b,
        Bytes::Frames(f, c) => frames::stream(&f, c),
    };
    let mut whole = StreamUsage::new();
    whole.push(&stream);
    let mut pieces = StreamUsage::new();
    let mut rest = &stream[..];
    for cut in cuts {
        let (now, later) = rest.split_at(usize::from(cut) % (rest.len() + 1));
        pieces.push(now);
        assert!(pieces.decoder().buffered() <= stream.len() - later.len());
        rest = later;
    }
    pieces.push(rest);
    assert_eq!(pieces.usage, whole.usage);
    assert_eq!(pieces.frames, whole.frames);
    assert_eq!(pieces.exception, whole.exception);
    assert_eq!(pieces.decoder().failed(), whole.decoder().failed());
    assert_eq!(pieces.decoder().buffered(), whole.decoder().buffered());
    if whole.decoder().failed().is_some() {
        assert_eq!(whole.decoder().buffered(), 0, "a failed decoder holds nothing");
    }
});
