//! Conversion records: one JSON file per converted archive, named by the
//! archive's sha256, under `<lake>/_auditlake/archives/`. A record is written
//! only after every month file of its archive is committed, so a record
//! always describes data that is in the lake. One file per archive means
//! concurrent writers never rewrite each other's records.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::commit::write_atomic;

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
    dir: PathBuf,
}

impl Manifest {
    pub fn new(meta_dir: &Path) -> Self {
        Manifest {
            dir: meta_dir.join("archives"),
        }
    }

    fn file(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.json"))
    }

    /// The record of an archive with this sha256, if it was converted.
    pub fn get(&self, sha256: &str) -> io::Result<Option<ArchiveRecord>> {
        match std::fs::read(self.file(sha256)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.file(sha256).display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn put(&self, record: &ArchiveRecord) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        write_atomic(&self.file(&record.sha256), &json)
    }

    /// All records, oldest conversion first.
    pub fn list(&self) -> io::Result<Vec<ArchiveRecord>> {
        let mut records = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(records),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path)?;
                let record: ArchiveRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
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
