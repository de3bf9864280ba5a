//! Opening an archive for streaming: gzip is detected from the magic bytes
//! and decompressed on the fly, and the bytes consumed are counted for the
//! progress display and for error messages about corrupt gzip data.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

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

/// Opens the archive file at `path` for streaming.
pub fn open_archive(path: &Path) -> io::Result<OpenedArchive> {
    let file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    open_reader(file, file_bytes)
}

/// Opens an archive held by any reader (a file, bytes downloaded by `pull`,
/// a fuzzer's input) of `file_bytes` bytes, decompressing it if its first
/// bytes are gzip's magic.
pub fn open_reader(
    input: impl Read + Send + 'static,
    file_bytes: u64,
) -> io::Result<OpenedArchive> {
    let progress = ByteCounter::default();
    let mut buffered = BufReader::with_capacity(
        256 * 1024,
        CountingReader {
            inner: input,
            count: progress.clone(),
        },
    );
    let reader: Box<dyn Read + Send> = if is_gzip(buffered.fill_buf()?) {
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

/// Whether `head` starts with gzip's magic bytes (a file's name may lie).
fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let len = bytes.len() as u64;
        let mut opened = open_reader(io::Cursor::new(bytes), len)?;
        let mut out = Vec::new();
        opened.reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_told_by_its_magic_bytes() {
        for (head, gzip) in [
            (&b"\x1f\x8b\x08"[..], true),
            (&b"\x1f\x8b"[..], true),
            (&b"\x1f"[..], false),
            (&b"\x8b\x1f"[..], false),
            (&b"{\"entries\""[..], false),
            (&b""[..], false),
        ] {
            assert_eq!(is_gzip(head), gzip, "{head:?}");
        }
    }

    #[test]
    fn plain_and_gzip_read_the_same_and_concatenated_members_join() {
        let text = b"[{\"id\":1}]";
        assert_eq!(read_all(text.to_vec()).unwrap(), text);
        assert_eq!(read_all(gzip(text)).unwrap(), text);
        let mut two = gzip(b"[{\"id\":1},");
        two.extend(gzip(b"{\"id\":2}]"));
        assert_eq!(read_all(two).unwrap(), b"[{\"id\":1},{\"id\":2}]");
    }

    #[test]
    fn a_truncated_gzip_names_its_compressed_offset() {
        let mut cut = gzip(&[b'x'; 4096]);
        cut.truncate(cut.len() - 10);
        let err = read_all(cut).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(
            text.starts_with("invalid gzip data near compressed byte "),
            "{text}"
        );
        assert!(
            text.ends_with("the gzip stream ends early (truncated file)"),
            "{text}"
        );
    }
}
