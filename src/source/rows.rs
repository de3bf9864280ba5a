//! Turning entries into record batches: the row builder of each format, the
//! count of entries read, and the loop over an array of entries that every
//! JSON format shares.

use std::io::Read;

use datafusion::arrow::array::RecordBatch;

use super::entry::{RawEntry, describe_json};
use super::error::{SourceError, frame_err, quoted_name};
use super::json_frames::{FrameError, JsonFramer, byte_offset_of, describe_byte, json_reason};
use super::{BATCH_ROWS, Format, Position, flat, heroku, mapped, scan, terraform};

/// What was read from an archive.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    pub entries: u64,
}

/// A batch of parsed rows; row `i` is entry number `first_entry + i`.
pub struct ParsedBatch {
    pub batch: RecordBatch,
    pub first_entry: u64,
}

/// The row builder of a format.
enum RowBuilder {
    Flat(Box<flat::FlatBatchBuilder>),
    Mapped(Box<mapped::MappedBatchBuilder>),
}

impl RowBuilder {
    fn for_format(format: &Format) -> RowBuilder {
        match format {
            Format::HerokuArchive | Format::HerokuEvents => {
                RowBuilder::Flat(Box::new(heroku::batch_builder(BATCH_ROWS)))
            }
            Format::Terraform => RowBuilder::Flat(Box::new(terraform::batch_builder(BATCH_ROWS))),
            Format::Mapped(m) => RowBuilder::Mapped(Box::new(mapped::MappedBatchBuilder::new(
                m.clone(),
                BATCH_ROWS,
            ))),
        }
    }

    fn len(&self) -> usize {
        match self {
            RowBuilder::Flat(b) => b.len(),
            RowBuilder::Mapped(b) => b.len(),
        }
    }

    fn finish(&mut self) -> RecordBatch {
        match self {
            RowBuilder::Flat(b) => b.finish(),
            RowBuilder::Mapped(b) => b.finish(),
        }
    }
}

/// Turns entries into batches for the sink, counting them.
pub(super) struct Rows<S> {
    pub(super) format: Format,
    builder: RowBuilder,
    pub(super) entries: u64,
    sink: S,
}

/// A step of [`read_array`]'s in-place parse: the framer's error (worded
/// with the entry's index afterwards) or the entry's own.
enum Step {
    Frame(FrameError),
    Source(SourceError),
}

impl From<FrameError> for Step {
    fn from(e: FrameError) -> Self {
        Step::Frame(e)
    }
}

impl<S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>> Rows<S> {
    pub(super) fn new(format: Format, sink: S) -> Self {
        Rows {
            builder: RowBuilder::for_format(&format),
            format,
            entries: 0,
            sink,
        }
    }

    /// Parses the entry at the start of `text` (found at byte `offset`) and
    /// appends it; returns its length, or None when `text` ends inside it.
    /// Flat formats only.
    fn push_prefix(&mut self, text: &str, offset: u64) -> Result<Option<usize>, SourceError> {
        let entry = match scan::parse_prefix(text) {
            Ok((Some(entry), len)) => (entry, len),
            Err(e) if e.ran_out(text) => return Ok(None),
            Ok((None, _)) | Err(_) if !text.starts_with('{') => {
                return Err(self.not_an_object(text.as_bytes(), Position::Byte(offset)));
            }
            Ok((None, _)) => unreachable!("a value starting with '{{' is an object"),
            Err(e) => return Err(self.invalid_json(offset + e.offset as u64, e.message)),
        };
        self.append_flat(&entry.0, Position::Byte(offset))?;
        Ok(Some(entry.1))
    }

    fn append_flat(&mut self, entry: &scan::Entry<'_>, at: Position) -> Result<(), SourceError> {
        let RowBuilder::Flat(builder) = &mut self.builder else {
            unreachable!("only flat formats parse entries with scan")
        };
        if let Err(e) = builder.append(entry) {
            return Err(self.entry_error(at, e.to_string()));
        }
        self.appended()
    }

    /// Counts an appended entry, flushing a full batch.
    fn appended(&mut self) -> Result<(), SourceError> {
        self.entries += 1;
        if self.builder.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// An error about the entry being read.
    fn entry_error(&self, at: Position, message: String) -> SourceError {
        SourceError::Invalid {
            entry: Some(self.entries),
            at: Some(at),
            message,
        }
    }

    /// The entry being read is not valid JSON: `reason` at byte `offset`.
    fn invalid_json(&self, offset: u64, reason: impl std::fmt::Display) -> SourceError {
        self.entry_error(Position::Byte(offset), format!("invalid JSON: {reason}"))
    }

    fn not_an_object(&self, bytes: &[u8], at: Position) -> SourceError {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]);
        let found = describe_json(text.trim_start());
        self.entry_error(at, format!("entry is not a JSON object (found {found})"))
    }

    /// Parses and appends one entry found at `at`.
    pub(super) fn push(&mut self, bytes: &[u8], at: Position) -> Result<(), SourceError> {
        let starts_object = bytes.first() == Some(&b'{');
        if let RowBuilder::Flat(_) = self.builder {
            let entry = match scan::parse_entry(bytes) {
                Ok(Some(entry)) => entry,
                Err(e) if starts_object && let Position::Byte(offset) = at => {
                    return Err(self.invalid_json(offset + e.offset as u64, e.message));
                }
                _ => return Err(self.not_an_object(bytes, at)),
            };
            return self.append_flat(&entry, at);
        }
        let entry: RawEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) if starts_object && let Position::Byte(offset) = at => {
                let at = offset + byte_offset_of(bytes, e.line(), e.column());
                return Err(self.invalid_json(at, json_reason(&e)));
            }
            Err(_) => return Err(self.not_an_object(bytes, at)),
        };
        let RowBuilder::Mapped(builder) = &mut self.builder else {
            unreachable!("flat builders returned above")
        };
        if let Err(e) = builder.append(&entry, bytes) {
            return Err(self.entry_error(at, e.to_string()));
        }
        self.appended()
    }

    fn flush(&mut self) -> Result<(), SourceError> {
        if self.builder.len() > 0 {
            let first_entry = self.entries - self.builder.len() as u64;
            let batch = self.builder.finish();
            (self.sink)(&self.format, ParsedBatch { batch, first_entry })
                .map_err(SourceError::Sink)?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<(Format, ReadStats), SourceError> {
        self.flush()?;
        Ok((
            self.format,
            ReadStats {
                entries: self.entries,
            },
        ))
    }
}

/// Checks that the value `key` holds is an array (without consuming it).
pub(super) fn expect_array<R: Read>(
    framer: &mut JsonFramer<R>,
    key: &str,
) -> Result<(), SourceError> {
    match framer.peek_significant().map_err(frame_err(None))? {
        Some(b'[') => Ok(()),
        Some(b) => Err(SourceError::at(
            None,
            framer.offset(),
            format!(
                "{} must be an array, found {}",
                quoted_name(key),
                describe_byte(b)
            ),
        )),
        None => Err(SourceError::from_frame(
            FrameError::Truncated {
                offset: framer.offset(),
                context: "after a key",
            },
            None,
        )),
    }
}

/// Reads `[entry, ...]` into `rows`.
pub(super) fn read_array<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    rows: &mut Rows<S>,
    context: &'static str,
) -> Result<(), SourceError> {
    framer.expect(b'[', "").map_err(frame_err(None))?;
    if framer.consume_if(b']').map_err(frame_err(None))? {
        return Ok(());
    }
    let in_place = matches!(rows.builder, RowBuilder::Flat(_));
    loop {
        let index = rows.entries;
        // Flat formats parse each entry in the framer's buffer, in one pass;
        // the framer frames it first only when that cannot be done (and for
        // the mapped builder, which parses with serde).
        let parsed = in_place
            && framer
                .parse_next(context, |text, offset| {
                    rows.push_prefix(text, offset).map_err(Step::Source)
                })
                .map_err(|e| match e {
                    Step::Frame(e) => SourceError::from_frame(e, Some(index)),
                    Step::Source(e) => e,
                })?;
        if !parsed {
            let frame = framer
                .next_value_unchecked(context)
                .map_err(frame_err(Some(index)))?;
            rows.push(frame.bytes, Position::Byte(frame.offset))?;
        }
        if !framer
            .next_separator(b']', context)
            .map_err(frame_err(Some(rows.entries)))?
        {
            return Ok(());
        }
    }
}
