//! Atomic replacement of month files (and of `pull`'s raw copies, which are
//! written the same way).
//!
//! On disk, a file is written under a hidden temporary name in its final
//! directory, flushed, and renamed over the final name: a reader sees either
//! the old file or the complete new one, never a half-written file, and a
//! crash leaves at worst a hidden `.…inprogress` file that no reader lists and
//! the next conversion removes.
//!
//! On S3, the file streams up as a multipart upload that becomes the object
//! only when completed: until then (and forever, if the run dies) readers see
//! the previous object. Memory stays bounded by the upload's part buffer.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use datafusion::parquet::arrow::async_writer::AsyncFileWriter;
use datafusion::parquet::errors::{ParquetError, Result as ParquetResult};
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use tokio::io::AsyncWriteExt;

use super::Lake;
use super::integrity::ByteDigest;

/// Suffix of files being written.
pub const IN_PROGRESS: &str = ".inprogress";

/// A file being written that becomes visible only on [`commit`](Self::commit).
/// Dropped without commit, the temporary file is removed.
#[derive(Debug)]
pub struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Prepares a temporary name next to `target`, creating its directory.
    pub fn new(target: &Path) -> io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = target
            .parent()
            .ok_or_else(|| io::Error::other("target has no parent directory"))?;
        std::fs::create_dir_all(dir)?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("target has no file name"))?;
        let temp = dir.join(format!(
            ".{name}.{}-{}{IN_PROGRESS}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(PendingFile {
            temp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// A pending file that was already committed (nothing to clean up).
    fn placeholder() -> Self {
        PendingFile {
            temp: PathBuf::new(),
            target: PathBuf::new(),
            committed: true,
        }
    }

    /// Where to write the content.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes the written temporary file to disk and renames it into place.
    pub fn commit(mut self) -> io::Result<()> {
        std::fs::File::open(&self.temp)?.sync_all()?;
        std::fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        // Persist the rename itself (best effort: not every platform can
        // open a directory).
        if let Some(dir) = self.target.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
            // Remove the directories `new` may have created (month, year,
            // table), as far as they are empty: a failed write leaves no trace.
            let mut dir = self.target.parent();
            for _ in 0..3 {
                match dir {
                    Some(d) if std::fs::remove_dir(d).is_ok() => dir = d.parent(),
                    _ => break,
                }
            }
        }
    }
}

/// An object being written (a month file, a raw copy of a download);
/// readers see it only after [`ObjectWriter::commit`], and dropped or
/// aborted before that it leaves nothing.
pub enum ObjectWriter {
    Local {
        pending: PendingFile,
        file: tokio::fs::File,
    },
    Remote(BufWriter),
}

impl ObjectWriter {
    /// Starts replacing the object at `path` of `lake`.
    pub async fn create(lake: &Lake, path: &ObjectPath) -> anyhow::Result<ObjectWriter> {
        let Some(root) = lake.local_root() else {
            return Ok(ObjectWriter::Remote(BufWriter::with_capacity(
                lake.store().clone(),
                path.clone(),
                UPLOAD_PART_BYTES,
            )));
        };
        let target = local_file(root, lake, path);
        let pending = PendingFile::new(&target).with_context(|| {
            format!(
                "cannot create a temporary file next to {}",
                target.display()
            )
        })?;
        let file = tokio::fs::File::create(pending.temp_path())
            .await
            .with_context(|| format!("cannot create {}", pending.temp_path().display()))?;
        Ok(ObjectWriter::Local { pending, file })
    }

    /// Appends `bytes`.
    pub async fn put(&mut self, bytes: bytes::Bytes) -> anyhow::Result<()> {
        match self {
            ObjectWriter::Local { file, pending } => file
                .write_all(&bytes)
                .await
                .with_context(|| format!("cannot write {}", pending.temp_path().display())),
            ObjectWriter::Remote(w) => Ok(w.put(bytes).await?),
        }
    }

    /// Makes the object visible, whole, in one step: on disk flush, fsync
    /// and rename; on S3 complete the multipart upload.
    pub async fn commit(&mut self) -> anyhow::Result<()> {
        match self {
            ObjectWriter::Local { pending, file } => {
                file.flush().await?;
                let pending = std::mem::replace(pending, PendingFile::placeholder());
                tokio::task::spawn_blocking(move || pending.commit()).await??;
            }
            ObjectWriter::Remote(w) => w.shutdown().await?,
        }
        Ok(())
    }

    /// Gives the object up: the temporary file is removed, the upload
    /// aborted.
    pub async fn abort(self) -> anyhow::Result<()> {
        match self {
            ObjectWriter::Local { .. } => Ok(()),
            ObjectWriter::Remote(mut w) => Ok(w.abort().await?),
        }
    }
}

/// Bytes buffered per multipart upload part (S3's minimum part is 5 MiB).
const UPLOAD_PART_BYTES: usize = 10 * 1024 * 1024;

/// The file on disk of an object of a local lake.
pub fn local_file(root: &Path, lake: &Lake, path: &ObjectPath) -> PathBuf {
    let rel = path
        .prefix_match(&lake.object_path(""))
        .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
        .unwrap_or_default();
    rel.iter().fold(root.to_path_buf(), |p, part| p.join(part))
}

/// An async Parquet sink that commits on `finish`, hashing the bytes it
/// writes (for the integrity log).
pub struct CommittingWriter {
    inner: ObjectWriter,
    digest: ByteDigest,
}

impl CommittingWriter {
    /// A sink into `inner` whose bytes `digest` sees.
    pub fn new(inner: ObjectWriter, digest: ByteDigest) -> Self {
        CommittingWriter { inner, digest }
    }
}

impl AsyncFileWriter for CommittingWriter {
    fn write(&mut self, bs: bytes::Bytes) -> BoxFuture<'_, ParquetResult<()>> {
        self.digest.update(&bs);
        match &mut self.inner {
            ObjectWriter::Local { file, .. } => AsyncFileWriter::write(file, bs),
            ObjectWriter::Remote(w) => AsyncFileWriter::write(w, bs),
        }
    }

    /// Completes the file: on disk flush, fsync and rename; on S3 complete
    /// the multipart upload. Either way the new file appears in one step.
    fn complete(&mut self) -> BoxFuture<'_, ParquetResult<()>> {
        Box::pin(async move {
            self.inner
                .commit()
                .await
                .map_err(|e| ParquetError::External(e.into()))
        })
    }
}

/// Removes `.…inprogress` files left in `dir` (recursively) by a crashed run,
/// except under `except` (another writer's files, e.g. the raw copies a
/// pull is downloading, which that pull cleans up itself). Returns how many
/// were removed.
pub fn remove_stale_temp_files(dir: &Path, except: Option<&Path>) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if except != Some(entry.path().as_path()) {
                removed += remove_stale_temp_files(&entry.path(), except)?;
            }
        } else if name.starts_with('.') && name.ends_with(IN_PROGRESS) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
        let pending = PendingFile::new(target)?;
        std::fs::write(pending.temp_path(), bytes)?;
        pending.commit()
    }

    #[test]
    fn uncommitted_files_vanish_and_committed_ones_replace() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/a.parquet");
        let p = PendingFile::new(&target).unwrap();
        std::fs::write(p.temp_path(), b"half").unwrap();
        let temp = p.temp_path().to_path_buf();
        drop(p);
        assert!(!temp.exists() && !target.exists());

        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/year=2024")).unwrap();
        std::fs::write(
            dir.path().join("t/year=2024/.a.parquet.1-0.inprogress"),
            b"x",
        )
        .unwrap();
        std::fs::write(dir.path().join("t/year=2024/a.parquet"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join("raw/x")).unwrap();
        let downloading = dir.path().join("raw/x/.a.json.gz.1-0.inprogress");
        std::fs::write(&downloading, b"x").unwrap();
        let raw = dir.path().join("raw");
        assert_eq!(remove_stale_temp_files(dir.path(), Some(&raw)).unwrap(), 1);
        assert!(downloading.exists());
        assert!(dir.path().join("t/year=2024/a.parquet").exists());
    }
}
