//! The integrity log: evidence that the lake holds what its conversions
//! wrote, and nothing else.
//!
//! Every committed month file appends one entry, `_auditlake/log/<seq>.json`
//! (12 digits), created with `If-None-Match: *` so an entry is never
//! rewritten: its sequence number, time and tool version, the archives the
//! rows came from (name, sha256, entries), the file written (path, SHA-256
//! of its bytes, size, rows, and a content digest over every value in file
//! order), and the SHA-256 of the previous entry's bytes. Editing an entry
//! breaks the chain at the next one; editing, removing or adding a data file
//! disagrees with the newest entry naming its path. `auditlake verify`
//! checks both; the head's hash, kept outside the lake, pins the whole log.
//!
//! The content digest does not depend on how the rows were batched or how
//! Parquet encoded them: per column, each value is hashed in row order as a
//! null flag and its bytes (strings length-prefixed, numbers and times
//! little-endian), after views and dictionaries are cast to their plain
//! type; the file's digest is the SHA-256 of the column names, types and
//! column digests. Recomputing it from the file read back proves the rows,
//! not only the bytes, are the ones written.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Lake, store_error};

/// The log's directory under the lake.
pub const LOG_DIR: &str = "_auditlake/log";

/// Streaming digest of a file's rows (see the module documentation).
pub struct ContentDigest {
    columns: Vec<(String, String, Sha256)>,
    rows: u64,
}

impl ContentDigest {
    pub fn new(schema: &Schema) -> Self {
        ContentDigest {
            columns: schema
                .fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        canonical_type(f.data_type()).to_string(),
                        Sha256::new(),
                    )
                })
                .collect(),
            rows: 0,
        }
    }

    /// Adds the rows of `batch`, whose columns are the schema's, in order.
    pub fn update(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        anyhow::ensure!(
            batch.num_columns() == self.columns.len(),
            "a batch of {} columns for a digest of {}",
            batch.num_columns(),
            self.columns.len()
        );
        for ((_, _, hasher), column) in self.columns.iter_mut().zip(batch.columns()) {
            hash_column(hasher, column)?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The digest, hex.
    pub fn finish(self) -> String {
        let mut all = Sha256::new();
        all.update(self.rows.to_le_bytes());
        for (name, ty, hasher) in self.columns {
            for part in [name.as_bytes(), ty.as_bytes()] {
                all.update((part.len() as u64).to_le_bytes());
                all.update(part);
            }
            all.update(hasher.finalize());
        }
        hex::encode(all.finalize())
    }
}

/// The plain type values are hashed as: string views, large strings and
/// dictionaries of strings are strings.
fn canonical_type(ty: &DataType) -> DataType {
    match ty {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, value) => canonical_type(value),
        other => other.clone(),
    }
}

/// Bytes gathered before they go to SHA-256 in one call: a value is hashed
/// as two or three pieces of a few bytes each, and one `update` a piece
/// cost more than the hashing itself.
const HASH_CHUNK: usize = 64 * 1024;

/// A piece at least this long goes to SHA-256 as it is, after what was
/// gathered before it: copying it into the chunk would cost more than the
/// call it saves.
const HASH_DIRECT: usize = 256;

fn hash_column(hasher: &mut Sha256, column: &ArrayRef) -> anyhow::Result<()> {
    let mut chunk = Vec::with_capacity(HASH_CHUNK);
    encode_column(column, &mut |_, bytes| {
        if bytes.len() >= HASH_DIRECT {
            hasher.update(&chunk);
            chunk.clear();
            hasher.update(bytes);
            return;
        }
        if chunk.len() + bytes.len() > HASH_CHUNK {
            hasher.update(&chunk);
            chunk.clear();
        }
        chunk.extend_from_slice(bytes);
    })?;
    hasher.update(&chunk);
    Ok(())
}

/// A digest of each row of `batch`: SHA-256 over its values, each encoded as
/// the content digest encodes it. Two rows are equal, value for value, when
/// their digests are (`verify --archives` compares entries with the lake so).
pub fn row_digests(batch: &RecordBatch) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut hashers = vec![Sha256::new(); batch.num_rows()];
    for column in batch.columns() {
        encode_column(column, &mut |row, bytes| hashers[row].update(bytes))?;
    }
    Ok(hashers.into_iter().map(|h| h.finalize().into()).collect())
}

/// Hands `sink` the canonical encoding of each value of `column`, as
/// (row, bytes) pieces in row order; generic over `sink`, so that a piece of
/// a few bytes costs no call.
fn encode_column(column: &ArrayRef, sink: &mut impl FnMut(usize, &[u8])) -> anyhow::Result<()> {
    let target = canonical_type(column.data_type());
    let column = if &target == column.data_type() {
        column.clone()
    } else {
        cast(column, &target)?
    };
    // `Array::is_valid`'s own test, on physical nulls, without a call
    // through the `dyn Array` per value.
    let nulls = column.nulls().cloned();
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    macro_rules! fixed {
        ($ty:ty) => {{
            let values = column.as_primitive::<$ty>();
            for i in 0..values.len() {
                if valid(i) {
                    sink(i, &[1u8]);
                    sink(i, &values.value(i).to_le_bytes());
                } else {
                    sink(i, &[0u8]);
                }
            }
        }};
    }
    let mut bytes_value = |i: usize, v: Option<&[u8]>| match v {
        Some(v) => {
            sink(i, &[1u8]);
            sink(i, &(v.len() as u64).to_le_bytes());
            sink(i, v);
        }
        None => sink(i, &[0u8]),
    };
    use datafusion::arrow::datatypes as t;
    match column.data_type() {
        DataType::Utf8 => {
            let values = column.as_string::<i32>();
            for i in 0..values.len() {
                bytes_value(i, valid(i).then(|| values.value(i).as_bytes()));
            }
        }
        DataType::Binary => {
            let values = column.as_binary::<i32>();
            for i in 0..values.len() {
                bytes_value(i, valid(i).then(|| values.value(i)));
            }
        }
        DataType::Boolean => {
            let values = column.as_boolean();
            for i in 0..values.len() {
                sink(
                    i,
                    &if !valid(i) {
                        [0u8, 0]
                    } else {
                        [1, values.value(i) as u8]
                    },
                );
            }
        }
        DataType::Int8 => fixed!(t::Int8Type),
        DataType::Int16 => fixed!(t::Int16Type),
        DataType::Int32 => fixed!(t::Int32Type),
        DataType::Int64 => fixed!(t::Int64Type),
        DataType::UInt8 => fixed!(t::UInt8Type),
        DataType::UInt16 => fixed!(t::UInt16Type),
        DataType::UInt32 => fixed!(t::UInt32Type),
        DataType::UInt64 => fixed!(t::UInt64Type),
        DataType::Float32 => fixed!(t::Float32Type),
        DataType::Float64 => fixed!(t::Float64Type),
        DataType::Date32 => fixed!(t::Date32Type),
        DataType::Timestamp(unit, _) => match unit {
            t::TimeUnit::Second => fixed!(t::TimestampSecondType),
            t::TimeUnit::Millisecond => fixed!(t::TimestampMillisecondType),
            t::TimeUnit::Microsecond => fixed!(t::TimestampMicrosecondType),
            t::TimeUnit::Nanosecond => fixed!(t::TimestampNanosecondType),
        },
        _ => {
            // Nested and rare types: their canonical text.
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            for i in 0..column.len() {
                let text = valid(i).then(|| formatter.value(i).to_string());
                bytes_value(i, text.as_deref().map(str::as_bytes));
            }
        }
    }
    Ok(())
}

/// SHA-256 and length of bytes as they are written, shared with the writer.
#[derive(Clone, Default)]
pub struct ByteDigest(Arc<Mutex<(Sha256, u64)>>);

impl ByteDigest {
    pub fn update(&self, bytes: &[u8]) {
        let mut state = self.0.lock().expect("the digest lock is never poisoned");
        state.0.update(bytes);
        state.1 += bytes.len() as u64;
    }

    /// (sha256 hex, bytes) of everything written so far.
    pub fn finish(&self) -> (String, u64) {
        let state = self.0.lock().expect("the digest lock is never poisoned");
        (hex::encode(state.0.clone().finalize()), state.1)
    }
}

/// A file as the log records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// Relative to the lake's root, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub rows: u64,
    /// [`ContentDigest`] of its rows.
    pub content: String,
}

/// An archive whose rows went into a committed file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceArchive {
    pub name: String,
    pub sha256: String,
    pub entries: u64,
}

/// One entry of the log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    pub time: String,
    pub version: String,
    /// What wrote it: `convert` (also for `pull`) or `upgrade`.
    pub by: String,
    pub archives: Vec<SourceArchive>,
    pub files: Vec<FileRecord>,
    /// SHA-256 of the previous entry's bytes; None for the first.
    pub prev: Option<String>,
    /// Ed25519 public key (hex) and signature (hex) over the entry as
    /// written without these two fields (`--sign-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl LogEntry {
    /// The bytes a signature covers: the entry without its signature fields.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.public_key = None;
        unsigned.signature = None;
        serde_json::to_vec_pretty(&unsigned).expect("an entry serializes")
    }

    /// Whether `key` signed this entry.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let Some(signature) = self
            .signature
            .as_deref()
            .and_then(|s| hex::decode(s).ok())
            .and_then(|b| Signature::from_slice(&b).ok())
        else {
            return false;
        };
        key.verify_strict(&self.signed_bytes(), &signature).is_ok()
    }
}

/// Reads a key file written by `auditlake keygen`: 64 hex digits.
fn key_bytes(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| {
            format!(
                "{} is not a key written by `auditlake keygen` (64 hex digits)",
                path.display()
            )
        })?;
    Ok(bytes)
}

/// The signing key in `path` (`--sign-key`).
pub fn load_signing_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_bytes(&key_bytes(path)?))
}

/// The public key in `path` (`verify --public-key`).
pub fn load_public_key(path: &std::path::Path) -> anyhow::Result<VerifyingKey> {
    VerifyingKey::from_bytes(&key_bytes(path)?)
        .with_context(|| format!("{} is not an Ed25519 public key", path.display()))
}

/// A new key pair: the secret and the public key, as hex lines.
pub fn generate_key() -> (String, String) {
    let secret: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&secret);
    (
        format!("{}\n", hex::encode(key.to_bytes())),
        format!("{}\n", hex::encode(key.verifying_key().to_bytes())),
    )
}

/// An entry as stored: its bytes, their hash, and the entry they hold.
pub struct StoredEntry {
    pub name: String,
    pub hash: String,
    pub entry: Result<LogEntry, String>,
}

fn entry_path(lake: &Lake, seq: u64) -> ObjectPath {
    lake.object_path(&format!("{LOG_DIR}/{seq:012}.json"))
}

/// Every entry of the log, in sequence order.
pub async fn entries(lake: &Lake) -> anyhow::Result<Vec<StoredEntry>> {
    let dir = lake.object_path(LOG_DIR);
    let mut metas: Vec<_> = lake
        .store()
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| store_error(e, LOG_DIR))?;
    metas.retain(|m| m.location.as_ref().ends_with(".json"));
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let mut found = Vec::with_capacity(metas.len());
    for meta in metas {
        let bytes = lake
            .store()
            .get(&meta.location)
            .await
            .map_err(|e| store_error(e, meta.location.as_ref()))?
            .bytes()
            .await
            .map_err(|e| store_error(e, meta.location.as_ref()))?;
        found.push(StoredEntry {
            name: meta.location.filename().unwrap_or_default().to_string(),
            hash: hex::encode(Sha256::digest(&bytes)),
            entry: serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        });
    }
    Ok(found)
}

/// The newest entry's sequence number and hash.
pub async fn head(lake: &Lake) -> anyhow::Result<Option<(u64, String)>> {
    let all = entries(lake).await?;
    Ok(all.last().and_then(|last| {
        let seq = last.name.strip_suffix(".json")?.parse().ok()?;
        Some((seq, last.hash.clone()))
    }))
}

/// Appends an entry for `files`, written from `archives` by `by`.
pub async fn append(
    lake: &Lake,
    by: &str,
    archives: Vec<SourceArchive>,
    files: Vec<FileRecord>,
) -> anyhow::Result<LogEntry> {
    for _ in 0..5 {
        let (seq, prev) = match head(lake).await? {
            Some((seq, hash)) => (seq + 1, Some(hash)),
            None => (1, None),
        };
        let entry = LogEntry {
            seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            version: env!("CARGO_PKG_VERSION").to_string(),
            by: by.to_string(),
            archives: archives.clone(),
            files: files.clone(),
            prev,
            public_key: None,
            signature: None,
        };
        let entry = match lake.signer() {
            Some(key) => {
                let signature = key.sign(&entry.signed_bytes());
                LogEntry {
                    public_key: Some(hex::encode(key.verifying_key().to_bytes())),
                    signature: Some(hex::encode(signature.to_bytes())),
                    ..entry
                }
            }
            None => entry,
        };
        let bytes = serde_json::to_vec_pretty(&entry)?;
        let put = lake
            .store()
            .put_opts(
                &entry_path(lake, seq),
                bytes.into(),
                PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                },
            )
            .await;
        match put {
            Ok(_) => return Ok(entry),
            // Another writer took this number: read the head again.
            Err(object_store::Error::AlreadyExists { .. }) => continue,
            Err(e) => {
                return Err(store_error(e, LOG_DIR)).context("cannot append to the integrity log");
            }
        }
    }
    anyhow::bail!("cannot append to the integrity log: its head kept moving")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::Field;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn batch(ids: Vec<Option<&str>>, ns: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(ns)),
            ],
        )
        .unwrap()
    }

    fn digest(batches: &[RecordBatch]) -> String {
        let mut d = ContentDigest::new(&schema());
        for b in batches {
            d.update(b).unwrap();
        }
        d.finish()
    }

    #[test]
    fn the_digest_ignores_batching_and_views_but_not_values() {
        let whole = digest(&[batch(
            vec![Some("a"), None, Some("c")],
            vec![Some(1), Some(2), None],
        )]);
        let split = digest(&[
            batch(vec![Some("a")], vec![Some(1)]),
            batch(vec![None, Some("c")], vec![Some(2), None]),
        ]);
        assert_eq!(whole, split);
        let views = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8View, true),
                Field::new("n", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringViewArray::from(vec![Some("a"), None, Some("c")])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
            ],
        )
        .unwrap();
        assert_eq!(digest(&[views]), whole);
        for other in [
            batch(
                vec![Some("a"), None, Some("d")],
                vec![Some(1), Some(2), None],
            ),
            batch(
                vec![Some("a"), Some(""), Some("c")],
                vec![Some(1), Some(2), None],
            ),
            batch(
                vec![Some("a"), None, Some("c")],
                vec![Some(1), Some(2), Some(0)],
            ),
            batch(
                vec![None, Some("a"), Some("c")],
                vec![Some(2), Some(1), None],
            ),
            batch(vec![Some("a"), None], vec![Some(1), Some(2)]),
        ] {
            assert_ne!(digest(&[other]), whole);
        }
        // Strings are length-prefixed: "ab","c" is not "a","bc".
        assert_ne!(
            digest(&[batch(vec![Some("ab"), Some("c")], vec![None, None])]),
            digest(&[batch(vec![Some("a"), Some("bc")], vec![None, None])])
        );
    }

    #[test]
    fn the_digest_is_the_documented_encoding_whatever_the_value_sizes() {
        // Values smaller and larger than the chunk gathered for SHA-256,
        // and enough of them to cross its boundary; values hashed directly.
        let big = "x".repeat(HASH_CHUNK + 7);
        let direct = "y".repeat(HASH_DIRECT);
        let ids: Vec<Option<&str>> = [
            Some("a"),
            None,
            Some(&big),
            Some("bc"),
            Some(&direct),
            Some("d"),
        ]
        .into_iter()
        .cycle()
        .take(12)
        .collect();
        let ns: Vec<Option<i64>> = (0..12).map(|i| (i % 5 != 0).then_some(i - 3)).collect();
        let mut id_bytes = Vec::new();
        for id in &ids {
            match id {
                Some(v) => {
                    id_bytes.push(1u8);
                    id_bytes.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    id_bytes.extend_from_slice(v.as_bytes());
                }
                None => id_bytes.push(0),
            }
        }
        let mut n_bytes = Vec::new();
        for n in &ns {
            match n {
                Some(v) => {
                    n_bytes.push(1u8);
                    n_bytes.extend_from_slice(&v.to_le_bytes());
                }
                None => n_bytes.push(0),
            }
        }
        let mut all = Sha256::new();
        all.update(12u64.to_le_bytes());
        for (name, ty, bytes) in [("id", "Utf8", &id_bytes), ("n", "Int64", &n_bytes)] {
            for part in [name, ty] {
                all.update((part.len() as u64).to_le_bytes());
                all.update(part.as_bytes());
            }
            all.update(Sha256::digest(bytes));
        }
        assert_eq!(digest(&[batch(ids, ns)]), hex::encode(all.finalize()));
    }

    #[test]
    fn bytes_are_hashed_as_written() {
        let d = ByteDigest::default();
        d.update(b"PAR1");
        d.update(b"...");
        let (sha, size) = d.finish();
        assert_eq!(size, 7);
        assert_eq!(sha, hex::encode(Sha256::digest(b"PAR1...")));
    }
}
