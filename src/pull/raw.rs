//! Raw copies: every body a pull fetches is kept, gzip-compressed, under
//! `<raw>/<source>/<account>/…` before anything is converted.
//!
//! A copy is written as its body arrives, so a month's archive of hundreds
//! of MB never sits in memory whole, and it appears in the store only when
//! [`RawCopy::keep`] completes it (a renamed file on disk, a completed
//! multipart upload on S3): a download that is cut, or fails its checksum,
//! leaves nothing for a conversion to pick up.

use std::io::Write;

use anyhow::Context;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::PullOptions;
use object_store::path::Path as ObjectPath;

use crate::lake::commit::{ObjectWriter, local_file, remove_stale_temp_files};
use crate::lake::{Lake, RAW_DIR};

/// Compressed bytes gathered before they are handed to the store.
const FLUSH_BYTES: usize = 1 << 20;

/// A raw copy being written.
pub struct RawCopy {
    writer: ObjectWriter,
    /// Where the copy is, as `convert` takes it.
    url: String,
    encoding: Encoding,
}

/// Whether the body is stored as it came or gzip-compressed on the way.
enum Encoding {
    /// Fewer than two bytes have come: the gzip magic is not known yet.
    Undecided(Vec<u8>),
    /// The body is gzip already.
    AsIs,
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl RawCopy {
    /// Starts the copy at `<raw>/<rel>` (`--raw`, else
    /// `<lake>/_auditlake/raw`).
    pub async fn create(lake: &Lake, options: &PullOptions, rel: &str) -> anyhow::Result<RawCopy> {
        let (store, path) = raw_path(lake, options, rel);
        let url = store.object_url(&path);
        let writer = ObjectWriter::create(store, &path)
            .await
            .with_context(|| format!("cannot keep the raw copy {url}"))?;
        Ok(RawCopy {
            writer,
            url,
            encoding: Encoding::Undecided(Vec::new()),
        })
    }

    /// Appends the next part of the body.
    pub async fn write(&mut self, chunk: Bytes) -> anyhow::Result<()> {
        match &mut self.encoding {
            Encoding::Undecided(head) => {
                head.extend_from_slice(&chunk);
                if head.len() >= 2 {
                    self.decide().await?;
                }
            }
            Encoding::AsIs => self.put(chunk).await?,
            Encoding::Gzip(encoder) => {
                encoder.write_all(&chunk)?;
                if encoder.get_ref().len() >= FLUSH_BYTES {
                    let compressed = std::mem::take(encoder.get_mut());
                    self.put(compressed.into()).await?;
                }
            }
        }
        Ok(())
    }

    /// Completes the copy and returns where it is.
    pub async fn keep(mut self) -> anyhow::Result<String> {
        if matches!(self.encoding, Encoding::Undecided(_)) {
            self.decide().await?;
        }
        if let Encoding::Gzip(encoder) = std::mem::replace(&mut self.encoding, Encoding::AsIs) {
            let rest = encoder.finish()?;
            self.put(rest.into()).await?;
        }
        self.writer
            .commit()
            .await
            .with_context(|| format!("cannot keep the raw copy {}", self.url))?;
        Ok(self.url)
    }

    /// Gives the copy up: nothing of it stays in the store.
    pub async fn abandon(self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!("{}: cannot remove the partial copy: {e:#}", self.url);
        }
    }

    /// Picks the encoding from the first bytes and writes them.
    async fn decide(&mut self) -> anyhow::Result<()> {
        let Encoding::Undecided(head) = std::mem::replace(&mut self.encoding, Encoding::AsIs)
        else {
            return Ok(());
        };
        if head.starts_with(&[0x1f, 0x8b]) {
            self.put(head.into()).await
        } else {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(&head)?;
            self.encoding = Encoding::Gzip(Box::new(encoder));
            Ok(())
        }
    }

    async fn put(&mut self, bytes: Bytes) -> anyhow::Result<()> {
        self.writer
            .put(bytes)
            .await
            .with_context(|| format!("cannot keep the raw copy {}", self.url))
    }
}

/// The store raw copies go to, and `rel`'s path in it.
fn raw_path<'a>(lake: &'a Lake, options: &'a PullOptions, rel: &str) -> (&'a Lake, ObjectPath) {
    match &options.raw {
        Some(raw) => (raw, raw.object_path(rel)),
        None => (lake, lake.object_path(&format!("{RAW_DIR}/{rel}"))),
    }
}

/// Removes what a killed pull of `<source>/<account>` left of a copy it was
/// writing on disk (hidden `.…inprogress` files); called only under that
/// source's pull lock (local lakes), so no running pull's copy is touched.
/// On S3 such a copy is an upload never completed, which no listing shows.
pub fn remove_unfinished(
    lake: &Lake,
    options: &PullOptions,
    source: &str,
    account: &str,
) -> anyhow::Result<()> {
    let (store, path) = raw_path(lake, options, &format!("{source}/{account}"));
    let Some(root) = store.local_root() else {
        return Ok(());
    };
    let dir = local_file(root, store, &path);
    let removed = remove_stale_temp_files(&dir, None)
        .with_context(|| format!("cannot clean up {}", dir.display()))?;
    if removed > 0 {
        tracing::info!("removed {removed} unfinished download(s) left by an interrupted pull");
    }
    Ok(())
}

/// Keeps a body read whole (an API page) as a raw copy at `rel`; returns
/// where it is.
pub async fn keep_raw(
    lake: &Lake,
    options: &PullOptions,
    rel: &str,
    bytes: &Bytes,
) -> anyhow::Result<String> {
    let mut copy = RawCopy::create(lake, options, rel).await?;
    match copy.write(bytes.clone()).await {
        Ok(()) => copy.keep().await,
        Err(e) => {
            copy.abandon().await;
            Err(e)
        }
    }
}
