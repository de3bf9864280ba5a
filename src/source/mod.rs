//! Archive formats: each module turns one archive's byte stream into Arrow
//! record batches of its table's schema. Nothing here knows about the lake.

pub mod entry;
pub mod flat;
pub mod heroku;
pub mod json_frames;
pub mod mapped;
pub mod mapping;
pub mod scan;
pub mod terraform;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use flate2::read::MultiGzDecoder;

use crate::table::TableSpec;
use entry::{RawEntry, describe_json};
use json_frames::{FrameError, JsonFramer, byte_offset_of, describe_byte, json_reason};
use mapping::{Mapping, RecordFormat};

/// Rows per record batch handed to the converter.
pub const BATCH_ROWS: usize = 8192;

/// The default largest entry (bytes of its JSON text, or of a CSV record):
/// real audit entries are a few kilobytes; one of 64 MiB is an export bug
/// or an attack, and converting it would take hundreds of megabytes.
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 64 << 20;

/// `64 MiB`, `1.5 KiB`, `12 bytes`: a limit as the user would write it.
fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The built-in tables, for the engine to register. Tables written through a
/// mapping are registered by name with [`mapped::table_spec`].
pub fn table_specs() -> Vec<TableSpec> {
    vec![heroku::table_spec(), terraform::table_spec()]
}

/// The spec of a table found in a lake: a built-in table, else a table
/// written through a mapping (every mapped table has the same columns).
pub fn table_spec_for(name: &str) -> TableSpec {
    table_specs()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| mapped::table_spec(name))
}

/// The formats auditlake reads.
#[derive(Clone, Debug)]
pub enum Format {
    /// Heroku Enterprise monthly archive: `{"entries": [...]}`.
    HerokuArchive,
    /// Heroku daily event pages: `[event, ...]`.
    HerokuEvents,
    /// Terraform Cloud audit trail pages: `{"data": [...], "pagination": …}`,
    /// one per file or one per line.
    Terraform,
    /// An export described by a mapping file.
    Mapped(Arc<Mapping>),
}

/// What detection tries, for the message when nothing matches.
const TRIED: &str = "tried heroku (an object with an \"entries\" array), heroku-events \
    (an array of events) and terraform (pages with a \"data\" array); for other exports \
    write a mapping file and pass --mapping FILE";

impl Format {
    /// The name used by `--format` and in conversion records.
    pub fn name(&self) -> &'static str {
        match self {
            Format::HerokuArchive => "heroku",
            Format::HerokuEvents => "heroku-events",
            Format::Terraform => "terraform",
            Format::Mapped(_) => "mapped",
        }
    }

    /// How the format's files look, for messages.
    fn shape(&self) -> &'static str {
        match self {
            Format::HerokuArchive => "a Heroku monthly archive ({\"entries\": [...]})",
            Format::HerokuEvents => "a JSON array of Heroku events",
            Format::Terraform => "Terraform Cloud audit trail pages ({\"data\": [...]})",
            Format::Mapped(_) => "records as the mapping describes",
        }
    }

    pub fn table_spec(&self) -> TableSpec {
        match self {
            Format::HerokuArchive | Format::HerokuEvents => heroku::table_spec(),
            Format::Terraform => terraform::table_spec(),
            Format::Mapped(m) => mapped::table_spec(&m.table),
        }
    }

    fn builder(&self) -> RowBuilder {
        match self {
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
}

/// The row builder of a format.
enum RowBuilder {
    Flat(Box<flat::FlatBatchBuilder>),
    Mapped(Box<mapped::MappedBatchBuilder>),
}

impl RowBuilder {
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

/// Why an archive could not be read. Names the entry and the byte offset in
/// the decompressed stream whenever they are known.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}{}", location(*.entry, *.at), .message)]
    Invalid {
        entry: Option<u64>,
        at: Option<Position>,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
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
    fn at(entry: Option<u64>, offset: u64, message: impl Into<String>) -> Self {
        SourceError::Invalid {
            entry,
            at: Some(Position::Byte(offset)),
            message: message.into(),
        }
    }

    fn from_frame(e: FrameError, entry: Option<u64>) -> Self {
        match e {
            FrameError::Syntax { offset, message } => {
                SourceError::at(entry, offset, format!("invalid JSON: {message}"))
            }
            FrameError::Truncated { offset, context } => SourceError::at(
                entry,
                offset,
                format!("unexpected end of input {context}: the archive is truncated"),
            ),
            FrameError::TooLarge { offset, limit } => SourceError::at(
                entry,
                offset,
                format!(
                    "the entry is larger than {}, the most this run converts (--max-entry-size, and at most 2/5 of --memory-limit): refused before it is read whole; raise them to convert it",
                    human_size(limit)
                ),
            ),
            FrameError::Io(e) => match e.get_ref().map(|inner| inner.is::<GzipError>()) {
                Some(true) => invalid(e.to_string()),
                _ => SourceError::Io(e),
            },
        }
    }
}

/// A counter of bytes read from the file, shared with a progress display.
pub type ByteCounter = Arc<AtomicU64>;

/// An archive file opened for streaming: decompressed if it is gzip
/// (detected from the magic bytes, not the file name).
pub struct OpenedArchive {
    pub reader: Box<dyn Read + Send>,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// Bytes of the file consumed so far.
    pub progress: ByteCounter,
}

pub fn open_archive(path: &Path) -> io::Result<OpenedArchive> {
    let file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let progress = ByteCounter::default();
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        CountingReader {
            inner: file,
            count: progress.clone(),
        },
    );
    let magic = {
        use io::BufRead;
        let head = buffered.fill_buf()?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let reader: Box<dyn Read + Send> = if magic {
        Box::new(GzipReader {
            inner: MultiGzDecoder::new(buffered),
            compressed_offset: progress.clone(),
        })
    } else {
        Box::new(buffered)
    };
    Ok(OpenedArchive {
        reader,
        file_bytes,
        progress,
    })
}

struct CountingReader<R> {
    inner: R,
    count: ByteCounter,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A gzip decoding failure, told apart from I/O errors so the message can
/// say the archive is corrupt rather than the disk.
#[derive(Debug, thiserror::Error)]
#[error("invalid gzip data near compressed byte {offset}: {reason}")]
pub struct GzipError {
    offset: u64,
    reason: String,
}

struct GzipReader<R> {
    inner: MultiGzDecoder<R>,
    compressed_offset: ByteCounter,
}

impl<R: io::BufRead> Read for GzipReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let reason = match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    "the gzip stream ends early (truncated file)".into()
                }
                _ => e.to_string(),
            };
            io::Error::new(
                io::ErrorKind::InvalidData,
                GzipError {
                    offset: self.compressed_offset.load(Ordering::Relaxed),
                    reason,
                },
            )
        })
    }
}

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

/// Turns entries into batches for the sink, counting them.
struct Rows<S> {
    format: Format,
    builder: RowBuilder,
    entries: u64,
    sink: S,
}

impl<S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>> Rows<S> {
    fn new(format: Format, sink: S) -> Self {
        Rows {
            builder: format.builder(),
            format,
            entries: 0,
            sink,
        }
    }

    /// Parses the entry at the start of `text` (found at byte `offset`) and
    /// appends it; returns its length, or None when `text` ends inside it.
    /// Flat formats only.
    fn push_prefix(&mut self, text: &str, offset: u64) -> anyhow::Result<Option<usize>> {
        let entry = match scan::parse_prefix(text) {
            Ok((Some(entry), len)) => (entry, len),
            Err(e) if e.ran_out(text) => return Ok(None),
            Ok((None, _)) | Err(_) if !text.starts_with('{') => {
                return Err(self
                    .not_an_object(text.as_bytes(), Position::Byte(offset))
                    .into());
            }
            Ok((None, _)) => unreachable!("a value starting with '{{' is an object"),
            Err(e) => {
                return Err(self
                    .invalid_json(offset + e.offset as u64, e.message)
                    .into());
            }
        };
        self.append_flat(&entry.0, Position::Byte(offset))?;
        Ok(Some(entry.1))
    }

    fn append_flat(&mut self, entry: &scan::Entry<'_>, at: Position) -> anyhow::Result<()> {
        let RowBuilder::Flat(builder) = &mut self.builder else {
            unreachable!("only flat formats parse entries with scan")
        };
        if let Err(e) = builder.append(entry) {
            return Err(self.entry_error(at, e.to_string()).into());
        }
        self.appended()
    }

    /// Counts an appended entry, flushing a full batch.
    fn appended(&mut self) -> anyhow::Result<()> {
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
    fn push(&mut self, bytes: &[u8], at: Position) -> anyhow::Result<()> {
        let starts_object = bytes.first() == Some(&b'{');
        if let RowBuilder::Flat(_) = self.builder {
            let entry = match scan::parse_entry(bytes) {
                Ok(Some(entry)) => entry,
                Err(e) if starts_object && let Position::Byte(offset) = at => {
                    return Err(self
                        .invalid_json(offset + e.offset as u64, e.message)
                        .into());
                }
                _ => return Err(self.not_an_object(bytes, at).into()),
            };
            return self.append_flat(&entry, at);
        }
        let entry: RawEntry = match serde_json::from_slice(bytes) {
            Ok(entry) => entry,
            Err(e) if starts_object && let Position::Byte(offset) = at => {
                let at = offset + byte_offset_of(bytes, e.line(), e.column());
                return Err(self.invalid_json(at, json_reason(&e)).into());
            }
            Err(_) => return Err(self.not_an_object(bytes, at).into()),
        };
        let RowBuilder::Mapped(builder) = &mut self.builder else {
            unreachable!("flat builders returned above")
        };
        if let Err(e) = builder.append(&entry, bytes) {
            return Err(self.entry_error(at, e.to_string()).into());
        }
        self.appended()
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.builder.len() > 0 {
            let first_entry = self.entries - self.builder.len() as u64;
            let batch = self.builder.finish();
            (self.sink)(&self.format, ParsedBatch { batch, first_entry })?;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<(Format, ReadStats)> {
        self.flush()?;
        Ok((
            self.format,
            ReadStats {
                entries: self.entries,
            },
        ))
    }
}

fn frame_err(entry: Option<u64>) -> impl Fn(FrameError) -> SourceError {
    move |e| SourceError::from_frame(e, entry)
}

fn invalid(message: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        entry: None,
        at: None,
        message: message.into(),
    }
}

/// Streams a file and hands each batch of rows to `sink`. The format is
/// `forced` when given (`--format`, `--mapping`), else detected from content.
/// Returns the format and counts.
///
/// On error, batches already handed out must be discarded by the caller: the
/// file as a whole is rejected.
pub fn read_archive<R: Read>(
    reader: R,
    forced: Option<&Format>,
    max_entry_size: usize,
    sink: impl FnMut(&Format, ParsedBatch) -> anyhow::Result<()>,
) -> anyhow::Result<(Format, ReadStats)> {
    if let Some(Format::Mapped(m)) = forced {
        return read_mapped(reader, m, max_entry_size, sink);
    }
    let mut framer = JsonFramer::with_limit(reader, max_entry_size);
    match framer.peek_significant().map_err(frame_err(None))? {
        None => Err(invalid("the file is empty: not an audit archive").into()),
        Some(b'[') => match forced {
            None | Some(Format::HerokuEvents) => {
                let mut rows = Rows::new(Format::HerokuEvents, sink);
                read_array(&mut framer, &mut rows, "in the array")?;
                framer.expect_end().map_err(frame_err(None))?;
                rows.finish()
            }
            Some(f) => Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected {}, found an array", f.shape()),
            )
            .into()),
        },
        Some(b'{') => match forced {
            Some(Format::HerokuEvents) => Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected {}, found an object", Format::HerokuEvents.shape()),
            )
            .into()),
            _ => read_pages(&mut framer, forced, sink),
        },
        Some(b) => {
            let found = describe_byte(b);
            let message = match forced {
                Some(f) => format!("expected {}, found {found}", f.shape()),
                None => format!("not a recognised audit file: it starts with {found}; {TRIED}"),
            };
            Err(SourceError::at(None, framer.offset(), message).into())
        }
    }
}

/// Reads one or more top-level objects: a Heroku archive (`"entries"`) or
/// Terraform pages (`"data"`, possibly one page per line). Other members are
/// skipped.
fn read_pages<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    forced: Option<&Format>,
    sink: S,
) -> anyhow::Result<(Format, ReadStats)> {
    let mut sink = Some(sink);
    let mut rows: Option<Rows<S>> = None;
    loop {
        framer
            .expect(b'{', "at the start")
            .map_err(frame_err(None))?;
        let mut found = false;
        let mut other_keys = Vec::new();
        if !framer.consume_if(b'}').map_err(frame_err(None))? {
            loop {
                let key = framer.next_key().map_err(frame_err(None))?;
                let detected = match rows.as_ref().map(|r| &r.format).or(forced) {
                    _ if found => None,
                    None if key == "entries" => Some(Format::HerokuArchive),
                    None if key == "data" => Some(Format::Terraform),
                    Some(Format::HerokuArchive) if key == "entries" => Some(Format::HerokuArchive),
                    Some(Format::Terraform) if key == "data" => Some(Format::Terraform),
                    _ => None,
                };
                if let Some(format) = detected {
                    found = true;
                    let rows = rows
                        .get_or_insert_with(|| Rows::new(format, sink.take().expect("taken once")));
                    let context = if key == "entries" {
                        "in \"entries\""
                    } else {
                        "in \"data\""
                    };
                    expect_array(framer, &key)?;
                    read_array(framer, rows, context)?;
                } else {
                    framer
                        .next_value("as a top-level value")
                        .map_err(frame_err(None))?;
                    if other_keys.len() < 5 {
                        other_keys.push(key);
                    }
                }
                if !framer
                    .next_separator(b'}', "in the top-level object")
                    .map_err(frame_err(None))?
                {
                    break;
                }
            }
        }
        if !found {
            let keys = if other_keys.is_empty() {
                "it is empty".to_string()
            } else {
                format!("its keys are {}", other_keys.join(", "))
            };
            let message = match rows.as_ref().map(|r| &r.format).or(forced) {
                Some(f) => format!(
                    "expected {}: this object has no such array ({keys})",
                    f.shape()
                ),
                None => format!(
                    "not a recognised audit file: the top-level object has no \"entries\" or \"data\" array ({keys}); {TRIED}"
                ),
            };
            return Err(invalid(message).into());
        }
        let is_terraform = matches!(rows.as_ref().map(|r| &r.format), Some(Format::Terraform));
        match framer.peek_significant().map_err(frame_err(None))? {
            Some(b'{') if is_terraform => continue,
            _ => {
                framer.expect_end().map_err(frame_err(None))?;
                break;
            }
        }
    }
    rows.expect("found an array").finish()
}

fn expect_array<R: Read>(framer: &mut JsonFramer<R>, key: &str) -> anyhow::Result<()> {
    match framer.peek_significant().map_err(frame_err(None))? {
        Some(b'[') => Ok(()),
        Some(b) => Err(SourceError::at(
            None,
            framer.offset(),
            format!("\"{key}\" must be an array, found {}", describe_byte(b)),
        )
        .into()),
        None => Err(SourceError::from_frame(
            FrameError::Truncated {
                offset: framer.offset(),
                context: "after a key",
            },
            None,
        )
        .into()),
    }
}

/// Reads `[entry, ...]` into `rows`.
fn read_array<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    rows: &mut Rows<S>,
    context: &'static str,
) -> anyhow::Result<()> {
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
                .parse_next(context, |text, offset| rows.push_prefix(text, offset))
                .map_err(|e| match e.downcast::<FrameError>() {
                    Ok(e) => SourceError::from_frame(e, Some(index)).into(),
                    Err(e) => e,
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

/// Reads an export described by a mapping.
fn read_mapped<R: Read>(
    reader: R,
    mapping: &Arc<Mapping>,
    max_entry_size: usize,
    sink: impl FnMut(&Format, ParsedBatch) -> anyhow::Result<()>,
) -> anyhow::Result<(Format, ReadStats)> {
    let mut rows = Rows::new(Format::Mapped(mapping.clone()), sink);
    match mapping.format {
        RecordFormat::Csv => {
            mapped::read_csv(reader, max_entry_size, |line, json| {
                rows.push(json.as_bytes(), Position::Line(line))
            })?;
        }
        RecordFormat::Ndjson => {
            let mut framer = JsonFramer::with_limit(reader, max_entry_size);
            while framer
                .peek_significant()
                .map_err(frame_err(None))?
                .is_some()
            {
                let index = rows.entries;
                let frame = framer
                    .next_value_unchecked("in a line")
                    .map_err(frame_err(Some(index)))?;
                rows.push(frame.bytes, Position::Byte(frame.offset))?;
            }
        }
        RecordFormat::Json => {
            let mut framer = JsonFramer::with_limit(reader, max_entry_size);
            find_records(&mut framer, &mapping.records, &mut rows)?;
            framer.expect_end().map_err(frame_err(None))?;
        }
    }
    rows.finish()
}

/// Walks down `path` (object keys) to the records array and reads it; the
/// rest of each enclosing object is skipped.
fn find_records<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    path: &[String],
    rows: &mut Rows<S>,
) -> anyhow::Result<()> {
    let Some((first, rest)) = path.split_first() else {
        expect_array(framer, "records")?;
        return read_array(framer, rows, "in the records");
    };
    match framer.peek_significant().map_err(frame_err(None))? {
        Some(b'{') => {}
        _ => {
            return Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected an object holding \"{first}\" (the mapping's records path)"),
            )
            .into());
        }
    }
    framer.expect(b'{', "").map_err(frame_err(None))?;
    let mut found = false;
    if !framer.consume_if(b'}').map_err(frame_err(None))? {
        loop {
            let key = framer.next_key().map_err(frame_err(None))?;
            if key == *first && !found {
                found = true;
                find_records(framer, rest, rows)?;
            } else {
                framer.next_value("in an object").map_err(frame_err(None))?;
            }
            if !framer
                .next_separator(b'}', "in an object")
                .map_err(frame_err(None))?
            {
                break;
            }
        }
    }
    if !found {
        return Err(invalid(format!(
            "no \"{first}\" member where the mapping's records path expects it"
        ))
        .into());
    }
    Ok(())
}
