//! `auditlake verify`: check the lake against its integrity log
//! ([`super::integrity`]).
//!
//! The chain first: every entry must parse, carry the next sequence number
//! and name the previous entry's hash. Then every data file of the lake is
//! read once as bytes (SHA-256) and once as rows (content digest), streamed
//! with bounded memory, and compared with the newest entry naming its path;
//! a file the log names that is gone, and a file the log never wrote, are
//! findings too, as is any other file in a table's directory that readers
//! would meet (DuckDB refuses a table with a Parquet file outside the
//! `year=/month=` layout; Spark reads every visible file). Each finding is
//! one line.

use std::collections::BTreeMap;
use std::time::Instant;

use datafusion::parquet::arrow::ParquetRecordBatchStreamBuilder;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;

use super::Lake;
use super::integrity::{self, ContentDigest, FileRecord};

/// One thing that does not hold.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// `file modified`, `file missing`, `file unknown`, `entry edited`,
    /// `chain broken`, `head differs`.
    pub kind: &'static str,
    /// The whole line, starting with the kind.
    pub message: String,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub lake: String,
    pub entries: usize,
    /// The newest entry's SHA-256 (anchor it outside the lake).
    pub head: Option<String>,
    pub files_checked: usize,
    pub bytes_read: u64,
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Verifies `lake`; `expected_head`, when given, is the head hash the user
/// anchored earlier, which pins the log's newest entry too.
pub async fn verify(
    lake: &Lake,
    expected_head: Option<&str>,
    public_key: Option<&ed25519_dalek::VerifyingKey>,
) -> anyhow::Result<VerifyReport> {
    let started = Instant::now();
    let mut findings = Vec::new();
    let entries = integrity::entries(lake).await?;
    // path -> (entry seq, record) of the newest entry naming it.
    let mut expected: BTreeMap<String, (u64, FileRecord)> = BTreeMap::new();
    let mut previous: Option<&str> = None;
    for (i, stored) in entries.iter().enumerate() {
        let seq = i as u64 + 1;
        match &stored.entry {
            Err(reason) => findings.push(Finding {
                kind: "entry edited",
                message: format!(
                    "entry edited: {} is not a log entry ({reason})",
                    stored.name
                ),
            }),
            Ok(entry) => {
                if entry.seq != seq || stored.name != format!("{seq:012}.json") {
                    findings.push(Finding {
                        kind: "chain broken",
                        message: format!(
                            "chain broken at {seq}: found {} holding entry {} (an entry was removed or renamed)",
                            stored.name, entry.seq
                        ),
                    });
                }
                if entry.prev.as_deref() != previous {
                    findings.push(Finding {
                        kind: "chain broken",
                        message: format!(
                            "chain broken at {seq}: it names {} as the previous entry's hash, which is {} (entry {} was edited or removed)",
                            entry.prev.as_deref().unwrap_or("none"),
                            previous.unwrap_or("none"),
                            seq - 1
                        ),
                    });
                }
                if let Some(key) = public_key {
                    if entry.signature.is_none() {
                        findings.push(Finding {
                            kind: "signature missing",
                            message: format!("signature missing: entry {seq} is not signed"),
                        });
                    } else if !entry.signed_by(key) {
                        findings.push(Finding {
                            kind: "signature invalid",
                            message: format!(
                                "signature invalid: entry {seq} was not signed by the given key, or was changed after it was signed"
                            ),
                        });
                    }
                }
                for file in &entry.files {
                    expected.insert(file.path.clone(), (entry.seq, file.clone()));
                }
            }
        }
        previous = Some(&stored.hash);
    }
    let head = entries.last().map(|e| e.hash.clone());
    if let Some(anchor) = expected_head
        && head.as_deref() != Some(anchor)
    {
        findings.push(Finding {
            kind: "head differs",
            message: format!(
                "head differs: the log's head is {} but {anchor} was expected (entries were added, edited or removed since it was anchored)",
                head.as_deref().unwrap_or("none")
            ),
        });
    }

    let mut files_checked = 0;
    let mut bytes_read = 0;
    let mut present = BTreeMap::new();
    for table in lake.tables().await? {
        let listing = lake.list_table(&table).await?;
        for path in listing.strays {
            findings.push(Finding {
                kind: "file unknown",
                message: format!(
                    "file unknown: {path}: not a month file of the lake's layout, and readers of the table's directory read it too"
                ),
            });
        }
        for file in listing.files {
            present.insert(lake.relative(&file.location), file);
        }
    }
    for (path, file) in &present {
        let Some((seq, record)) = expected.get(path) else {
            findings.push(Finding {
                kind: "file unknown",
                message: format!("file unknown: {path}: present but unknown to the integrity log"),
            });
            continue;
        };
        let (sha256, size) = file_sha256(lake, &file.location).await?;
        let (content, rows) = file_content(lake, &file.location, size).await?;
        files_checked += 1;
        bytes_read += size;
        if sha256 != record.sha256 || content != record.content || rows != record.rows {
            let what = match (sha256 == record.sha256, content == record.content) {
                (false, false) => "its bytes and its rows differ",
                (false, true) => "its bytes differ (its rows do not)",
                (true, false) => "its rows differ",
                (true, true) => "its row count differs from the log's",
            };
            findings.push(Finding {
                kind: "file modified",
                message: format!(
                    "file modified: {path}: modified since entry {seq}: {what} ({rows} rows, sha256 {sha256}; the log says {} rows, sha256 {})",
                    record.rows, record.sha256
                ),
            });
        }
    }
    for (path, (seq, _)) in &expected {
        if !present.contains_key(path) {
            findings.push(Finding {
                kind: "file missing",
                message: format!("file missing: {path}: missing (written by entry {seq})"),
            });
        }
    }
    Ok(VerifyReport {
        lake: lake.location().to_string(),
        entries: entries.len(),
        head,
        files_checked,
        bytes_read,
        findings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// SHA-256 and size of an object, streamed.
pub async fn file_sha256(
    lake: &Lake,
    path: &object_store::path::Path,
) -> anyhow::Result<(String, u64)> {
    let mut stream = lake.store().get(path).await?.into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The content digest and row count of a Parquet object, read batch by batch.
async fn file_content(
    lake: &Lake,
    path: &object_store::path::Path,
    size: u64,
) -> anyhow::Result<(String, u64)> {
    let reader = StoreReader {
        store: lake.store().clone(),
        path: path.clone(),
        size,
    };
    let builder = match ParquetRecordBatchStreamBuilder::new(reader).await {
        Ok(b) => b,
        // Not Parquet any more: no rows to compare.
        Err(_) => return Ok((String::new(), 0)),
    };
    let mut digest = ContentDigest::new(builder.schema());
    let mut batches = builder.with_batch_size(8192).build()?;
    while let Some(batch) = batches.try_next().await.ok().flatten() {
        digest.update(&batch)?;
    }
    let rows = digest.rows();
    Ok((digest.finish(), rows))
}

/// Hands each record batch of a Parquet object to `f`, streamed.
pub async fn each_batch(
    lake: &Lake,
    path: &object_store::path::Path,
    size: u64,
    mut f: impl FnMut(&datafusion::arrow::array::RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let reader = StoreReader {
        store: lake.store().clone(),
        path: path.clone(),
        size,
    };
    let mut batches = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .with_batch_size(8192)
        .build()?;
    while let Some(batch) = batches.try_next().await? {
        f(&batch)?;
    }
    Ok(())
}

/// Reads a Parquet object by ranges, as the Parquet reader asks for them.
struct StoreReader {
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

fn parquet_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_error)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}
