//! Range reads of local lake files on the thread that asks, while the bytes
//! are in the page cache.
//!
//! object_store's `LocalFileSystem` runs every read on tokio's blocking pool:
//! one hand-off to open and stat the file and another to read each range.
//! A question that keeps scattered rows reads many small ranges, and `perf`
//! put about a tenth of such a question's samples in waking threads and
//! switching to them. A lake being queried is nearly always in the page
//! cache, where a read is a copy. So each read is first asked of the kernel
//! with `RWF_NOWAIT`, which refuses (`EAGAIN`) rather than wait for the disk;
//! only a read that would wait moves to the blocking pool, so a cold disk
//! never stalls a worker that other partitions share.

use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;

/// A lake file opened for range reads, with what `stat` said of it.
#[derive(Debug)]
pub(crate) struct LocalFile {
    file: File,
    metadata: Metadata,
}

impl LocalFile {
    /// Opens `path`; a directory is "not found", as object_store has it.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "is a directory"));
        }
        Ok(LocalFile { file, metadata })
    }

    /// The e_tag object_store's `LocalFileSystem` lists for this file (inode,
    /// modification time in microseconds and size, in hex), so a read can be
    /// held to the version of the file that was listed. A test pins it to
    /// the listing's.
    pub(crate) fn e_tag(&self) -> String {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&self.metadata);
        #[cfg(not(unix))]
        let inode = 0u64;
        let mtime = self
            .metadata
            .modified()
            .ok()
            .and_then(|mtime| mtime.duration_since(SystemTime::UNIX_EPOCH).ok())
            .unwrap_or_default()
            .as_micros();
        format!("{inode:x}-{mtime:x}-{:x}", self.metadata.len())
    }

    /// What a listing says of this file, as object_store's local store has it.
    pub(crate) fn meta(&self, location: object_store::path::Path) -> object_store::ObjectMeta {
        object_store::ObjectMeta {
            location,
            last_modified: self
                .metadata
                .modified()
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_default(),
            size: self.metadata.len(),
            e_tag: Some(self.e_tag()),
            version: None,
        }
    }

    /// Reads `ranges`, on this thread while the page cache holds them and on
    /// tokio's blocking pool from the first that would wait for the disk.
    pub(crate) async fn read_ranges(self, ranges: &[Range<u64>]) -> io::Result<Vec<Bytes>> {
        let size = self.metadata.len();
        if let Some(range) = ranges.iter().find(|r| r.start > r.end || r.end > size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "bytes {}..{} asked of a file of {size} bytes",
                    range.start, range.end
                ),
            ));
        }
        let (spans, span_of) = spans(ranges);
        let starts: Vec<u64> = spans.iter().map(|span| span.start).collect();
        let read = self.read_spans(spans).await?;
        Ok(ranges
            .iter()
            .zip(span_of)
            .map(|(range, span)| {
                let at = starts[span];
                read[span].slice((range.start - at) as usize..(range.end - at) as usize)
            })
            .collect())
    }

    /// Reads `spans` in order, as [`LocalFile::read_ranges`] says.
    async fn read_spans(self, spans: Vec<Range<u64>>) -> io::Result<Vec<Bytes>> {
        let mut reads = RangeReads {
            file: self,
            done: Vec::with_capacity(spans.len()),
            ranges: spans,
            buffer: Vec::new(),
        };
        if reads.read(Wait::No)? {
            return Ok(reads.done);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || reads.read(Wait::Yes).map(|_| reads.done))
                .await
                .map_err(io::Error::other)?,
            Err(_) => reads.read(Wait::Yes).map(|_| reads.done),
        }
    }
}

/// Ranges this close are read as one, the gap's bytes copied too: a system
/// call costs about as much as copying a few KiB from the page cache, and
/// the pages a filtered scan keeps often lie side by side.
const MERGE_GAP: u64 = 4 * 1024;

/// The spans to read for `ranges` (in file order, near ones merged), and the
/// span each range falls in.
fn spans(ranges: &[Range<u64>]) -> (Vec<Range<u64>>, Vec<usize>) {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut spans: Vec<Range<u64>> = Vec::new();
    let mut span_of = vec![0; ranges.len()];
    for i in order {
        let range = &ranges[i];
        match spans.last_mut() {
            Some(last) if range.start <= last.end.saturating_add(MERGE_GAP) => {
                last.end = last.end.max(range.end);
            }
            _ => spans.push(range.clone()),
        }
        span_of[i] = spans.len() - 1;
    }
    (spans, span_of)
}

#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Take only what the page cache holds.
    No,
    Yes,
}

/// Reads of a file's ranges in order, which may stop where the page cache
/// ends and go on later on another thread.
struct RangeReads {
    file: LocalFile,
    ranges: Vec<Range<u64>>,
    /// The ranges read whole, in order.
    done: Vec<Bytes>,
    /// The range being read (`ranges[done.len()]`): its length is what is
    /// read so far, its capacity the range's length.
    buffer: Vec<u8>,
}

impl RangeReads {
    /// Reads on until every range is read (`true`) or, with `Wait::No`, the
    /// next bytes are not in the page cache (`false`).
    fn read(&mut self, wait: Wait) -> io::Result<bool> {
        while let Some(range) = self.ranges.get(self.done.len()).cloned() {
            let want = (range.end - range.start) as usize;
            if self.buffer.capacity() < want {
                self.buffer.reserve_exact(want);
            }
            while self.buffer.len() < want {
                let at = range.start + self.buffer.len() as u64;
                match read_at(&self.file.file, &mut self.buffer, want, at, wait) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the file ended at byte {at}, before {}", range.end),
                        ));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if wait == Wait::No && would_wait(&e) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            self.done
                .push(Bytes::from(std::mem::take(&mut self.buffer)));
        }
        Ok(true)
    }
}

/// Whether a `Wait::No` read was refused for lack of cached pages, or because
/// this file system does not take `RWF_NOWAIT` (then the pool reads it).
fn would_wait(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == libc_codes::EAGAIN || code == libc_codes::EOPNOTSUPP
    )
}

/// Reads into `buffer`'s spare room, at most up to `want` bytes in all, from
/// file offset `at`; returns how many bytes it read (0 at the end of file).
#[cfg(target_os = "linux")]
fn read_at(
    file: &File,
    buffer: &mut Vec<u8>,
    want: usize,
    at: u64,
    wait: Wait,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let filled = buffer.len();
    let room = &mut buffer.spare_capacity_mut()[..want - filled];
    let iov = libc::iovec {
        iov_base: room.as_mut_ptr().cast(),
        iov_len: room.len(),
    };
    let flags = match wait {
        Wait::No => libc::RWF_NOWAIT,
        Wait::Yes => 0,
    };
    // SAFETY: `iov` points at `room`, spare capacity of `buffer` that this
    // call alone borrows; the kernel writes at most `iov_len` bytes there,
    // and only the count it returns is marked initialised below.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at as libc::off_t, flags) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read as usize;
    // SAFETY: the kernel initialised `read` bytes after `filled`.
    unsafe { buffer.set_len(filled + read) };
    Ok(read)
}

/// Elsewhere every read may wait: the first one refuses, and the pool reads.
#[cfg(not(target_os = "linux"))]
fn read_at(
    file: &File,
    buffer: &mut Vec<u8>,
    want: usize,
    at: u64,
    wait: Wait,
) -> io::Result<usize> {
    if wait == Wait::No {
        return Err(io::Error::from_raw_os_error(libc_codes::EAGAIN));
    }
    let filled = buffer.len();
    buffer.resize(want, 0);
    let read = read_at_offset(file, &mut buffer[filled..], at);
    buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
    read
}

#[cfg(all(unix, not(target_os = "linux")))]
fn read_at_offset(file: &File, into: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, into, at)
}

#[cfg(windows)]
fn read_at_offset(file: &File, into: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, into, at)
}

mod libc_codes {
    #[cfg(unix)]
    pub(super) const EAGAIN: i32 = libc::EAGAIN;
    #[cfg(unix)]
    pub(super) const EOPNOTSUPP: i32 = libc::EOPNOTSUPP;
    #[cfg(not(unix))]
    pub(super) const EAGAIN: i32 = 11;
    #[cfg(not(unix))]
    pub(super) const EOPNOTSUPP: i32 = 95;
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;
    use object_store::path::Path as ObjectPath;
    use std::path::PathBuf;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    /// Ranges come back in the order asked, overlapping or empty ones too,
    /// with the bytes at their offsets.
    #[tokio::test]
    async fn ranges_read_in_the_order_asked() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, path) = file_of(&bytes);
        let ranges = [90_000..100_000, 3..10, 5..5, 0..100_000, 8..9];
        let got = LocalFile::open(&path)
            .unwrap()
            .read_ranges(&ranges)
            .await
            .unwrap();
        assert_eq!(got.len(), 5);
        for (range, got) in ranges.iter().zip(&got) {
            assert_eq!(
                got.as_ref(),
                &bytes[range.start as usize..range.end as usize]
            );
        }
    }

    /// Ranges near each other are read as one span and cut apart again;
    /// far ones are spans of their own.
    #[test]
    fn near_ranges_are_read_as_one_span() {
        // 4,127 lies 4,097 bytes past 30: a span of its own; 24,106 lies
        // 4,096 bytes past 20,010: the same span.
        let asked = [
            0..10,
            12..20,
            20_000..20_010,
            15..30,
            5..5,
            4_127..4_200,
            24_106..24_110,
        ];
        let (spans, span_of) = spans(&asked);
        assert_eq!(spans, [0..30, 4_127..4_200, 20_000..24_110]);
        assert_eq!(span_of, [0, 0, 2, 0, 0, 1, 2]);
    }

    /// A read past the end names the file and the range instead of
    /// returning short bytes.
    #[tokio::test]
    async fn a_range_past_the_end_is_an_error() {
        let (_dir, path) = file_of(b"twelve bytes");
        let err = LocalFile::open(&path)
            .unwrap()
            .read_ranges(&[0..4, 10..13])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(err.to_string(), "bytes 10..13 asked of a file of 12 bytes");
    }

    /// Reads that must wait finish on the pool: what the first pass did not
    /// take from the page cache is read after, and the ranges are whole.
    #[test]
    fn a_read_that_stops_at_the_page_cache_goes_on_waiting() {
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let (_dir, path) = file_of(&bytes);
        let mut reads = RangeReads {
            file: LocalFile::open(&path).unwrap(),
            ranges: vec![0..20_000, 20_000..50_000],
            done: Vec::new(),
            buffer: Vec::with_capacity(20_000),
        };
        // As if the first pass had stopped 1,234 bytes into the first range.
        reads.buffer.extend_from_slice(&bytes[..1_234]);
        assert!(reads.read(Wait::Yes).unwrap());
        assert_eq!(reads.done.len(), 2);
        assert_eq!(reads.done[0].as_ref(), &bytes[..20_000]);
        assert_eq!(reads.done[1].as_ref(), &bytes[20_000..]);
    }

    /// A file whose pages were dropped from the page cache is read on the
    /// pool (the kernel refuses the first read), with the same bytes.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_file_out_of_the_page_cache_is_read_whole() {
        use std::os::fd::AsRawFd;
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let (_dir, path) = file_of(&bytes);
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        // SAFETY: an advice call on an open descriptor; it changes no memory.
        let advised =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(advised, 0);
        let got = LocalFile::open(&path)
            .unwrap()
            .read_ranges(&[100_000..300_000, 0..7])
            .await
            .unwrap();
        assert_eq!(got[0].as_ref(), &bytes[100_000..]);
        assert_eq!(got[1].as_ref(), &bytes[..7]);
    }

    /// The e_tag computed here is the one `LocalFileSystem` lists, so a read
    /// of a file listed and not replaced is never taken for a replacement.
    #[tokio::test]
    async fn the_e_tag_is_the_listings() {
        let (dir, path) = file_of(b"some bytes");
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let listed = store
            .head(&ObjectPath::from("f.parquet"))
            .await
            .unwrap()
            .e_tag
            .unwrap();
        assert_eq!(LocalFile::open(&path).unwrap().e_tag(), listed);
    }
}
