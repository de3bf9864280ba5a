//! Conversion records: one JSON file per converted archive, named by the
//! archive's sha256, under `<lake>/_auditlake/archives/`. A record is written
//! only after every month file of its archive is committed, so a record
//! always describes data that is in the lake. One file per archive means
//! concurrent writers never rewrite each other's records.

use std::sync::Arc;

use anyhow::Context;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::store_error;
/// What the lake remembers about one converted archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchiveRecord {
    /// Hex sha256 of the archive file as stored (compressed bytes for `.gz`).
    pub sha256: String,
    /// File name of the archive when it was converted.
    pub name: String,
    /// Path given on the command line.
    pub path: String,
    /// Detected format.
    pub format: String,
    /// Table the events went to.
    pub table: String,
    /// Entries read from the archive.
    pub entries: u64,
    /// Rows in the month files this archive rewrote, after the merge.
    pub rows_written: u64,
    /// Rows the lake gained (events whose id it did not hold before).
    pub new_rows: u64,
    /// Months touched, as `YYYY-MM` (sorted).
    pub months: Vec<String>,
    /// When the conversion finished (RFC 3339, UTC).
    pub converted_at: String,
    /// Wall time of the conversion in seconds.
    pub seconds: f64,
    /// auditlake version that converted it.
    pub auditlake_version: String,
}

/// The records of one lake.
pub struct Manifest {
    store: Arc<dyn ObjectStore>,
    dir: ObjectPath,
}

impl Manifest {
    pub fn new(store: Arc<dyn ObjectStore>, dir: ObjectPath) -> Self {
        Manifest { store, dir }
    }

    fn file(&self, sha256: &str) -> ObjectPath {
        self.dir.clone().join(format!("{sha256}.json"))
    }

    /// The record of an archive with this sha256, if it was converted.
    pub async fn get(&self, sha256: &str) -> anyhow::Result<Option<ArchiveRecord>> {
        self.read(&self.file(sha256)).await
    }

    async fn read(&self, path: &ObjectPath) -> anyhow::Result<Option<ArchiveRecord>> {
        let bytes = match self.store.get(path).await {
            Ok(result) => result.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|e| store_error(e, path.as_ref()))?;
        let record = serde_json::from_slice(&bytes)
            .with_context(|| format!("{path}: not a conversion record"))?;
        Ok(Some(record))
    }

    /// Writes a record in one step (a single PUT, or a rename on disk).
    pub async fn put(&self, record: &ArchiveRecord) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(record)?;
        let path = self.file(&record.sha256);
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| store_error(e, path.as_ref()))?;
        Ok(())
    }

    /// All records, oldest conversion first.
    pub async fn list(&self) -> anyhow::Result<Vec<ArchiveRecord>> {
        let objects: Vec<_> = self
            .store
            .list(Some(&self.dir))
            .try_collect()
            .await
            .map_err(|e| store_error(e, self.dir.as_ref()))?;
        let mut records = Vec::new();
        for meta in objects {
            if meta.location.extension() == Some("json")
                && let Some(record) = self.read(&meta.location).await?
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| {
            (a.converted_at.as_str(), a.name.as_str())
                .cmp(&(b.converted_at.as_str(), b.name.as_str()))
        });
        Ok(records)
    }
}
