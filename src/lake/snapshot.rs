//! Reads that see each file as it was listed.
//!
//! DataFusion lists a table's files (path, size, e_tag) when it plans a scan
//! and reads them later by byte ranges computed from the listed size. A
//! conversion that replaces a month file in between (an atomic rename on
//! disk, a completed upload on S3) would have the reader fetch the new file's
//! bytes at the old file's offsets: a "corrupt footer" at best, pages of two
//! files mixed into one answer at worst.
//!
//! [`SnapshotStore`] remembers the e_tag of every object it lists and makes
//! each later read of it conditional on that e_tag (`If-Match` on S3; on disk
//! the inode, mtime and size of the file as opened). A read therefore
//! returns the bytes of the listed file or fails with a one-line
//! "was replaced" error; [`SnapshotStore::replacements`] counts those, so the
//! engine can plan the query again over the new listing.
//!
//! Over a local lake it also reads byte ranges itself
//! ([`local_reads`](super::local_reads)): on the calling thread while the
//! page cache holds them, instead of two hand-offs to tokio's blocking pool
//! a range.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    OBJECT_STORE_COALESCE_DEFAULT, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result, coalesce_ranges,
};

use super::local_reads::LocalFile;

/// An object store whose reads see the objects as they were listed.
#[derive(Debug)]
pub struct SnapshotStore {
    inner: Arc<dyn ObjectStore>,
    /// The inner store when it is the local file system, whose range reads
    /// this store does itself.
    local: Option<Arc<LocalFileSystem>>,
    /// The e_tag each path had when it was last listed or looked up.
    listed: Arc<Mutex<HashMap<Path, String>>>,
    /// How many reads found their object replaced since it was listed.
    replacements: AtomicU64,
}

impl SnapshotStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        SnapshotStore {
            inner,
            local: None,
            listed: Arc::default(),
            replacements: AtomicU64::new(0),
        }
    }

    /// Over the local file system, reading ranges on the calling thread
    /// while the page cache holds them.
    pub fn local(files: Arc<LocalFileSystem>) -> Self {
        SnapshotStore {
            local: Some(files.clone()),
            ..Self::new(files)
        }
    }

    /// How many reads so far found their object replaced (or removed) after
    /// it was listed. A query that failed while this grew read a lake that
    /// changed under it, and is worth planning again.
    pub fn replacements(&self) -> u64 {
        self.replacements.load(Ordering::Relaxed)
    }

    fn remember(listed: &Mutex<HashMap<Path, String>>, meta: &ObjectMeta) {
        if let Some(tag) = &meta.e_tag {
            listed
                .lock()
                .expect("the e_tag map is never poisoned")
                .insert(meta.location.clone(), tag.clone());
        }
    }

    fn remembering(
        &self,
        stream: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let listed = self.listed.clone();
        stream
            .inspect(move |meta| {
                if let Ok(meta) = meta {
                    Self::remember(&listed, meta);
                }
            })
            .boxed()
    }

    fn forget(&self, location: &Path) {
        self.listed
            .lock()
            .expect("the e_tag map is never poisoned")
            .remove(location);
    }

    /// The e_tag `location` had when it was listed, if it was.
    fn listed_e_tag(&self, location: &Path) -> Option<String> {
        self.listed
            .lock()
            .expect("the e_tag map is never poisoned")
            .get(location)
            .cloned()
    }

    /// Counts a read of a listed object that changed or went away, and
    /// forgets its e_tag so that the next listing reads the new version.
    fn replaced(&self, location: &Path, path: String) -> object_store::Error {
        self.replacements.fetch_add(1, Ordering::Relaxed);
        self.forget(location);
        object_store::Error::Generic {
            store: "lake",
            source: Box::new(Replaced { path }),
        }
    }

    /// A local file opened for reads, if it is still the version listed.
    fn open_listed(
        &self,
        files: &LocalFileSystem,
        location: &Path,
    ) -> Result<(LocalFile, std::path::PathBuf)> {
        let path = files.path_to_filesystem(location)?;
        let expected = self.listed_e_tag(location);
        let file = match LocalFile::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(match expected {
                    Some(_) => self.replaced(location, path.display().to_string()),
                    None => object_store::Error::NotFound {
                        path: path.display().to_string(),
                        source: Box::new(e),
                    },
                });
            }
            Err(e) => return Err(local_error(&path, e)),
        };
        if expected.is_some_and(|tag| tag != file.e_tag()) {
            return Err(self.replaced(location, path.display().to_string()));
        }
        Ok((file, path))
    }

    /// `ranges` of a local file, held to the version that was listed.
    async fn local_ranges(
        &self,
        files: &LocalFileSystem,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>> {
        let (file, path) = self.open_listed(files, location)?;
        file.read_ranges(ranges)
            .await
            .map_err(|e| local_error(&path, e))
    }

    /// One range of a local file (footers, page indexes), as `get_opts`
    /// returns it.
    async fn local_get(
        &self,
        files: &LocalFileSystem,
        location: &Path,
        range: &GetRange,
    ) -> Result<GetResult> {
        let (file, path) = self.open_listed(files, location)?;
        let meta = file.meta(location.clone());
        let range = range
            .as_range(meta.size)
            .map_err(|e| local_error(&path, std::io::Error::other(e)))?;
        let mut bytes = file
            .read_ranges(std::slice::from_ref(&range))
            .await
            .map_err(|e| local_error(&path, e))?;
        let bytes = bytes.pop().expect("one range asked, one read");
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            attributes: Default::default(),
            range,
            meta,
        })
    }
}

fn local_error(path: &std::path::Path, e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("{}: {e}", path.display()).into(),
    }
}

impl fmt::Display for SnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotStore({})", self.inner)
    }
}

/// The error of a read whose object changed after it was listed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} was replaced while the query read it (a conversion committed a new version of its month); run the query again"
)]
struct Replaced {
    path: String,
}

#[async_trait]
impl ObjectStore for SnapshotStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.forget(location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.forget(location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, mut options: GetOptions) -> Result<GetResult> {
        if let (Some(files), Some(range)) = (&self.local, &options.range)
            && !options.head
            && options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
        {
            return self.local_get(files, location, range).await;
        }
        if options.head {
            let result = self.inner.get_opts(location, options).await?;
            Self::remember(&self.listed, &result.meta);
            return Ok(result);
        }
        let expected = if options.if_match.is_none() && options.version.is_none() {
            self.listed_e_tag(location)
        } else {
            None
        };
        let conditional = expected.is_some();
        options.if_match = options.if_match.or(expected);
        match self.inner.get_opts(location, options).await {
            Err(
                object_store::Error::Precondition { path, .. }
                | object_store::Error::NotFound { path, .. },
            ) if conditional => Err(self.replaced(location, path)),
            other => other,
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match &self.local {
            Some(files) => self.local_ranges(files, location, ranges).await,
            // What the trait does by default, through this store's
            // conditional `get_opts`.
            None => {
                coalesce_ranges(
                    ranges,
                    |range| self.get_range(location, range),
                    OBJECT_STORE_COALESCE_DEFAULT,
                )
                .await
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let listed = self.listed.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |path| {
                if let Ok(path) = path {
                    listed
                        .lock()
                        .expect("the e_tag map is never poisoned")
                        .remove(path);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.remembering(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.remembering(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let result = self.inner.list_with_delimiter(prefix).await?;
        for meta in &result.objects {
            Self::remember(&self.listed, meta);
        }
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.forget(to);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.forget(from);
        self.forget(to);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;

    /// Replacing a listed file as a conversion does (write beside, rename
    /// over) makes the next read of it fail with "was replaced" instead of
    /// returning the new file's bytes at the old offsets; listing again reads
    /// the new file.
    #[tokio::test]
    async fn a_file_replaced_after_listing_is_not_read_at_old_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(
            LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        ));
        std::fs::write(dir.path().join("a.parquet"), b"old bytes").unwrap();
        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
        let path = listed[0].location.clone();
        assert_eq!(store.get_range(&path, 0..3).await.unwrap().as_ref(), b"old");

        std::fs::write(dir.path().join(".a.tmp"), b"new, longer bytes").unwrap();
        std::fs::rename(dir.path().join(".a.tmp"), dir.path().join("a.parquet")).unwrap();
        let err = store.get_range(&path, 0..3).await.unwrap_err().to_string();
        assert!(
            err.contains("a.parquet was replaced while the query read it"),
            "{err}"
        );
        assert_eq!(store.replacements(), 1);

        let _: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        assert_eq!(store.get_range(&path, 0..3).await.unwrap().as_ref(), b"new");
        assert_eq!(store.replacements(), 1);
    }

    /// Over a local lake the store reads ranges itself, held to the listed
    /// version as `get_opts` is: a replaced or removed file is "replaced",
    /// a path never listed and missing is "not found".
    #[tokio::test]
    async fn local_range_reads_see_the_listed_file() {
        const FIRST_THREE: &[Range<u64>] = std::slice::from_ref(&(0..3));
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::local(Arc::new(
            LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        ));
        std::fs::write(dir.path().join("a.parquet"), b"old bytes").unwrap();
        let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        let path = listed[0].location.clone();
        let got = store.get_ranges(&path, &[4..9, 0..3]).await.unwrap();
        assert_eq!(got, [&b"bytes"[..], &b"old"[..]]);
        let options = GetOptions::new().with_range(Some(GetRange::Suffix(5)));
        let suffix = store.get_opts(&path, options).await.unwrap();
        assert_eq!(suffix.range, 4..9);
        assert_eq!(suffix.meta.e_tag, listed[0].e_tag);
        assert_eq!(suffix.meta.size, 9);
        assert_eq!(suffix.bytes().await.unwrap().as_ref(), b"bytes");
        let err = store.get_ranges(&path, &[0..3, 5..10]).await.unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("a.parquet: bytes 5..10 asked of a file of 9 bytes"),
            "{err}"
        );

        let replace = |bytes: &[u8]| {
            std::fs::write(dir.path().join(".a.tmp"), bytes).unwrap();
            std::fs::rename(dir.path().join(".a.tmp"), dir.path().join("a.parquet")).unwrap();
        };
        let replaced = |err: object_store::Error| {
            let err = err.to_string();
            assert!(
                err.contains("a.parquet was replaced while the query read it"),
                "{err}"
            );
        };
        replace(b"new, longer bytes");
        replaced(store.get_ranges(&path, FIRST_THREE).await.unwrap_err());
        assert_eq!(store.replacements(), 1);

        let _: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        let got = store.get_ranges(&path, FIRST_THREE).await.unwrap();
        assert_eq!(got, [&b"new"[..]]);
        replace(b"newer bytes");
        replaced(store.get_range(&path, 0..3).await.unwrap_err());
        assert_eq!(store.replacements(), 2);

        let _: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
        assert_eq!(
            store.get_range(&path, 0..5).await.unwrap().as_ref(),
            b"newer"
        );
        std::fs::remove_file(dir.path().join("a.parquet")).unwrap();
        replaced(store.get_ranges(&path, FIRST_THREE).await.unwrap_err());
        assert_eq!(store.replacements(), 3);

        let err = store
            .get_ranges(&Path::from("c"), FIRST_THREE)
            .await
            .unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        let err = store
            .get_ranges(&Path::from("a.parquet"), FIRST_THREE)
            .await;
        assert!(
            matches!(err, Err(object_store::Error::NotFound { .. })),
            "{err:?}"
        );
        assert_eq!(store.replacements(), 3);
    }

    /// A path never listed reads as the inner store reads it.
    #[tokio::test]
    async fn unlisted_paths_read_unconditionally() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(
            LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        ));
        std::fs::write(dir.path().join("b"), b"bytes").unwrap();
        let got = store.get(&Path::from("b")).await.unwrap().bytes().await;
        assert_eq!(got.unwrap().as_ref(), b"bytes");
        let err = store.get(&Path::from("c")).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        assert_eq!(store.replacements(), 0);
    }
}
