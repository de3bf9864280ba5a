//! Why an archive could not be read, and where: the one error type of
//! `source/`. Every message names the entry and the byte offset (of the
//! decompressed stream) or line whenever they are known; `convert/` adds
//! the file's name.

use std::io;

use super::archive::GzipError;
use super::json_frames::FrameError;

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The archive's content is not what its format allows.
    #[error("{}{}", location(*.entry, *.at), .message)]
    Invalid {
        entry: Option<u64>,
        at: Option<Position>,
        message: String,
    },
    /// The archive could not be read (a disk or network error).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The caller's sink refused a batch; its error is given back unchanged.
    #[error(transparent)]
    Sink(anyhow::Error),
}

/// Where in a file: a byte offset of the (decompressed) stream, or a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Byte(u64),
    Line(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Byte(o) => write!(f, "byte {o}"),
            Position::Line(l) => write!(f, "line {l}"),
        }
    }
}

fn location(entry: Option<u64>, at: Option<Position>) -> String {
    match (entry, at) {
        (Some(e), Some(p)) => format!("entry {e} ({p}): "),
        (Some(e), None) => format!("entry {e}: "),
        (None, Some(p)) => format!("{p}: "),
        (None, None) => String::new(),
    }
}

impl SourceError {
    /// An error at byte `offset`, in entry `entry` when it is known.
    pub(crate) fn at(entry: Option<u64>, offset: u64, message: impl Into<String>) -> Self {
        SourceError::Invalid {
            entry,
            at: Some(Position::Byte(offset)),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SourceError::Invalid {
            entry: None,
            at: None,
            message: message.into(),
        }
    }

    /// A framing error, in entry `entry` when one was being read.
    pub(crate) fn from_frame(e: FrameError, entry: Option<u64>) -> Self {
        match e {
            FrameError::Io(e) => match e.get_ref().map(|inner| inner.is::<GzipError>()) {
                Some(true) => SourceError::invalid(e.to_string()),
                _ => SourceError::Io(e),
            },
            e => SourceError::at(entry, e.offset().unwrap_or_default(), e.reason()),
        }
    }
}

/// Maps framing errors to source errors of entry `entry`.
pub(crate) fn frame_err(entry: Option<u64>) -> impl Fn(FrameError) -> SourceError {
    move |e| SourceError::from_frame(e, entry)
}

/// A name from the archive (a key) as a message shows it: as it is when
/// it is short plain text, else JSON-quoted (so a newline or a control
/// character cannot break the one-line message) and cut to 40 characters.
pub(crate) fn shown_name(name: &str) -> String {
    const LONGEST: usize = 40;
    if name.chars().count() <= LONGEST && !name.chars().any(char::is_control) {
        return name.to_string();
    }
    let cut: String = name.chars().take(LONGEST).collect();
    let quoted = serde_json::to_string(&cut).expect("strings serialize");
    if cut.len() < name.len() {
        format!("{quoted}…")
    } else {
        quoted
    }
}

/// A name from the archive in quotes, as [`shown_name`] keeps it on one line.
pub(crate) fn quoted_name(name: &str) -> String {
    let shown = shown_name(name);
    if shown.starts_with('"') {
        shown
    } else {
        format!("\"{shown}\"")
    }
}

/// `64 MiB`, `1.5 KiB`, `12 bytes`: a limit as the user would write it.
pub(crate) fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_entry_and_position_they_know() {
        let cases = [
            (Some(3), Some(Position::Byte(17)), "entry 3 (byte 17): bad"),
            (Some(3), Some(Position::Line(2)), "entry 3 (line 2): bad"),
            (Some(0), None, "entry 0: bad"),
            (None, Some(Position::Byte(0)), "byte 0: bad"),
            (None, None, "bad"),
        ];
        for (entry, at, text) in cases {
            let e = SourceError::Invalid {
                entry,
                at,
                message: "bad".into(),
            };
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn frame_errors_keep_one_wording() {
        let truncated = FrameError::Truncated {
            offset: 9,
            context: "inside a JSON string",
        };
        let reason = "unexpected end of input inside a JSON string: the archive is truncated";
        assert_eq!(truncated.to_string(), format!("byte 9: {reason}"));
        assert_eq!(
            SourceError::from_frame(truncated, Some(1)).to_string(),
            format!("entry 1 (byte 9): {reason}")
        );
    }

    #[test]
    fn names_from_the_archive_stay_on_one_line() {
        assert_eq!(shown_name("entries"), "entries");
        assert_eq!(shown_name("accog_ch\nt"), "\"accog_ch\\nt\"");
        let long = "k".repeat(50);
        assert_eq!(shown_name(&long), format!("\"{}\"…", "k".repeat(40)));
        assert_eq!(quoted_name("entries"), "\"entries\"");
        assert_eq!(quoted_name("a\tb"), "\"a\\tb\"");
    }

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(3 << 10), "3 KiB");
        assert_eq!(human_size((1 << 20) + 1), "1048577 bytes");
        assert_eq!(human_size(12), "12 bytes");
    }
}
