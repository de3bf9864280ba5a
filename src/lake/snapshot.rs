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

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// An object store whose reads see the objects as they were listed.
#[derive(Debug)]
pub struct SnapshotStore {
    inner: Arc<dyn ObjectStore>,
    /// The e_tag each path had when it was last listed or looked up.
    listed: Arc<Mutex<HashMap<Path, String>>>,
    /// How many reads found their object replaced since it was listed.
    replacements: AtomicU64,
}

impl SnapshotStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        SnapshotStore {
            inner,
            listed: Arc::default(),
            replacements: AtomicU64::new(0),
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
        if options.head {
            let result = self.inner.get_opts(location, options).await?;
            Self::remember(&self.listed, &result.meta);
            return Ok(result);
        }
        let expected = if options.if_match.is_none() && options.version.is_none() {
            self.listed
                .lock()
                .expect("the e_tag map is never poisoned")
                .get(location)
                .cloned()
        } else {
            None
        };
        let conditional = expected.is_some();
        options.if_match = options.if_match.or(expected);
        match self.inner.get_opts(location, options).await {
            Err(
                object_store::Error::Precondition { path, .. }
                | object_store::Error::NotFound { path, .. },
            ) if conditional => {
                self.replacements.fetch_add(1, Ordering::Relaxed);
                self.forget(location);
                Err(object_store::Error::Generic {
                    store: "lake",
                    source: Box::new(Replaced { path }),
                })
            }
            other => other,
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
