//! Archive formats: each module turns one archive's byte stream into Arrow
//! record batches of its table's schema. Nothing here knows about the lake.

pub mod entry;
pub mod heroku;
pub mod json_frames;

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

/// Rows per record batch handed to the converter.
pub const BATCH_ROWS: usize = 8192;

/// Every table a format can write, for the engine to register.
pub fn table_specs() -> Vec<TableSpec> {
    vec![heroku::table_spec()]
}

/// The archive formats auditlake reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Heroku Enterprise monthly archive: `{"entries": [...]}`.
    HerokuArchive,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::HerokuArchive => "heroku",
        }
    }

    pub fn table_spec(self) -> TableSpec {
        match self {
            Format::HerokuArchive => heroku::table_spec(),
        }
    }
}

/// Why an archive could not be read. Names the entry and the byte offset in
/// the decompressed stream whenever they are known.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}{}", location(*.entry, *.offset), .message)]
    Invalid {
        entry: Option<u64>,
        offset: Option<u64>,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn location(entry: Option<u64>, offset: Option<u64>) -> String {
    match (entry, offset) {
        (Some(e), Some(o)) => format!("entry {e} (byte {o}): "),
        (Some(e), None) => format!("entry {e}: "),
        (None, Some(o)) => format!("byte {o}: "),
        (None, None) => String::new(),
    }
}

impl SourceError {
    fn at(entry: Option<u64>, offset: u64, message: impl Into<String>) -> Self {
        SourceError::Invalid {
            entry,
            offset: Some(offset),
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
            FrameError::Io(e) => match e.get_ref().map(|inner| inner.is::<GzipError>()) {
                Some(true) => SourceError::Invalid {
                    entry: None,
                    offset: None,
                    message: e.to_string(),
                },
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

/// Streams an archive, detecting its format from content, and hands each
/// batch of rows to `sink`. Returns the detected format and counts.
///
/// On error, batches already handed out must be discarded by the caller: the
/// archive as a whole is rejected.
pub fn read_archive<R: Read>(
    reader: R,
    mut sink: impl FnMut(Format, ParsedBatch) -> anyhow::Result<()>,
) -> Result<(Format, ReadStats), anyhow::Error> {
    let mut framer = JsonFramer::new(reader);
    let first = framer
        .peek_significant()
        .map_err(|e| SourceError::from_frame(e, None))?;
    match first {
        Some(b'{') => {}
        Some(b) => {
            return Err(SourceError::at(
                None,
                framer.offset(),
                format!(
                    "not an audit archive: expected a JSON object with an \"entries\" array, found {}",
                    describe_byte(b)
                ),
            )
            .into());
        }
        None => {
            return Err(SourceError::Invalid {
                entry: None,
                offset: None,
                message: "the file is empty: not an audit archive".into(),
            }
            .into());
        }
    }
    let format = Format::HerokuArchive;
    let stats = read_heroku_archive(&mut framer, |batch| sink(format, batch))?;
    Ok((format, stats))
}

/// Reads `{"entries": [...], ...}`; other top-level members are skipped.
fn read_heroku_archive<R: Read>(
    framer: &mut JsonFramer<R>,
    mut sink: impl FnMut(ParsedBatch) -> anyhow::Result<()>,
) -> anyhow::Result<ReadStats> {
    let frame_err = |e| SourceError::from_frame(e, None);
    framer.expect(b'{', "at the start").map_err(frame_err)?;
    let mut builder = heroku::HerokuBatchBuilder::with_capacity(BATCH_ROWS);
    let mut stats = ReadStats::default();
    let mut seen_entries = false;
    let mut other_keys = Vec::new();
    if !framer.consume_if(b'}').map_err(frame_err)? {
        loop {
            let key = framer.next_key().map_err(frame_err)?;
            if key == "entries" && !seen_entries {
                seen_entries = true;
                read_entries(framer, &mut builder, &mut stats, &mut sink)?;
            } else {
                framer
                    .next_value("as a top-level value")
                    .map_err(frame_err)?;
                if other_keys.len() < 5 {
                    other_keys.push(key);
                }
            }
            if !framer
                .next_separator(b'}', "in the top-level object")
                .map_err(frame_err)?
            {
                break;
            }
        }
    }
    framer.expect_end().map_err(frame_err)?;
    if !seen_entries {
        let keys = if other_keys.is_empty() {
            "it is empty".to_string()
        } else {
            format!("its keys are {}", other_keys.join(", "))
        };
        return Err(SourceError::Invalid {
            entry: None,
            offset: None,
            message: format!(
                "not an audit archive: the top-level object has no \"entries\" array ({keys})"
            ),
        }
        .into());
    }
    if !builder.is_empty() {
        let first_entry = stats.entries - builder.len() as u64;
        sink(ParsedBatch {
            batch: builder.finish(),
            first_entry,
        })?;
    }
    Ok(stats)
}

fn read_entries<R: Read>(
    framer: &mut JsonFramer<R>,
    builder: &mut heroku::HerokuBatchBuilder,
    stats: &mut ReadStats,
    sink: &mut impl FnMut(ParsedBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match framer
        .peek_significant()
        .map_err(|e| SourceError::from_frame(e, None))?
    {
        Some(b'[') => {}
        Some(b) => {
            return Err(SourceError::at(
                None,
                framer.offset(),
                format!("\"entries\" must be an array, found {}", describe_byte(b)),
            )
            .into());
        }
        None => {
            return Err(SourceError::from_frame(
                FrameError::Truncated {
                    offset: framer.offset(),
                    context: "after \"entries\"",
                },
                None,
            )
            .into());
        }
    }
    framer
        .expect(b'[', "")
        .map_err(|e| SourceError::from_frame(e, None))?;
    if framer
        .consume_if(b']')
        .map_err(|e| SourceError::from_frame(e, None))?
    {
        return Ok(());
    }
    loop {
        let index = stats.entries;
        let frame = framer
            .next_value_unchecked("in \"entries\"")
            .map_err(|e| SourceError::from_frame(e, Some(index)))?;
        let entry: RawEntry = serde_json::from_slice(frame.bytes).map_err(|e| {
            if frame.bytes.first() == Some(&b'{') {
                SourceError::at(
                    Some(index),
                    frame.offset + byte_offset_of(frame.bytes, e.line(), e.column()),
                    format!("invalid JSON: {}", json_reason(&e)),
                )
            } else {
                let text = String::from_utf8_lossy(&frame.bytes[..frame.bytes.len().min(16)]);
                SourceError::at(
                    Some(index),
                    frame.offset,
                    format!(
                        "entry is not a JSON object (found {})",
                        describe_json(&text)
                    ),
                )
            }
        })?;
        builder
            .append(&entry)
            .map_err(|e| SourceError::at(Some(index), frame.offset, e.to_string()))?;
        stats.entries += 1;
        if builder.len() >= BATCH_ROWS {
            let first_entry = stats.entries - builder.len() as u64;
            sink(ParsedBatch {
                batch: builder.finish(),
                first_entry,
            })?;
        }
        if !framer
            .next_separator(b']', "in \"entries\"")
            .map_err(|e| SourceError::from_frame(e, Some(stats.entries)))?
        {
            return Ok(());
        }
    }
}
