//! What every fuzz target checks: reading any bytes as an archive (or as a
//! mapping file) ends in rows or in a one-line error, never in a panic, a
//! multi-line message or an empty one. libFuzzer reports a panic as a crash.

use std::path::Path;
use std::sync::Arc;

use auditlake::source::mapping::Mapping;
use auditlake::source::{self, Format};

/// The largest entry the targets read: small, so that a mutated length
/// cannot make one run slow.
const MAX_ENTRY: usize = 1 << 20;

/// Reads `input` as an archive of `forced` format (None: detected).
pub fn read_archive(input: &[u8], forced: Option<&Format>) {
    let opened = source::open_reader(std::io::Cursor::new(input.to_vec()), input.len() as u64)
        .expect("reading from memory cannot fail to start");
    if let Err(e) = source::read_archive(opened.reader, forced, MAX_ENTRY, |_, _| Ok(())) {
        check_message(&format!("{e:#}"));
    }
}

/// Parses `input` as a mapping file.
pub fn read_mapping(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    if let Err(e) = Mapping::parse(&text, Path::new("fuzz.toml")) {
        check_message(&format!("{e:#}"));
    }
}

/// A bundled mapping (`mappings/NAME.toml`) as a format.
pub fn mapped(text: &str, name: &str) -> Format {
    Format::Mapped(Arc::new(
        Mapping::parse(text, Path::new(name)).expect("the bundled mapping parses"),
    ))
}

fn check_message(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error");
    assert!(!message.contains('\n'), "a multi-line error: {message:?}");
}
