//! Phase 1 of a conversion: stream one archive and spread its rows over
//! temporary per-partition Arrow IPC files ("staging"), so that memory stays
//! bounded whatever the archive's size and a rejected archive leaves nothing
//! behind in the lake. IPC rather than Parquet: the files are read once, by
//! the merge, and writing and reading them is a copy rather than an encoding
//! (Parquet staging cost a seventh of a conversion's CPU).

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt64Array,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::FileWriter;

use crate::lake::PartitionKey;
use crate::source::ParsedBatch;
use crate::table::TableSpec;

/// Column added to staged rows: the row's priority, `archive << 40 | entry`
/// (the archive's ordinal in the run, the entry's index in its archive), so
/// the merge can let the later of two duplicates win.
pub const ENTRY_COLUMN: &str = "_entry";

/// Bits of [`ENTRY_COLUMN`] that hold the entry index.
pub const ENTRY_BITS: u32 = 40;

/// The archive ordinal encoded in a staged row's priority.
pub fn archive_of(priority: u64) -> u64 {
    priority >> ENTRY_BITS
}

/// Hashes keys the same way in every archive of a run, so that parts of one
/// partition staged from different archives can be compared.
pub type KeyHasher = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// The bytes of each key of a text key column, for hashing with
/// [`KeyHasher`] (staged parts and old month files hash them alike).
pub fn key_bytes(column: &dyn Array) -> anyhow::Result<Vec<Option<&[u8]>>> {
    Ok(match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|k| k.map(str::as_bytes))
            .collect(),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .map(|k| k.map(str::as_bytes))
            .collect(),
        other => anyhow::bail!("a key column cannot be of type {other}"),
    })
}

/// The schema of staged rows: the table's columns, then [`ENTRY_COLUMN`].
pub fn staged_schema(spec: &TableSpec) -> SchemaRef {
    let mut fields: Vec<Field> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(ENTRY_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// One partition's staged rows.
#[derive(Debug)]
pub struct StagedPart {
    /// Its Arrow IPC file.
    pub path: PathBuf,
    pub rows: u64,
    /// Whether a key may occur twice among the staged rows (a hash of each
    /// key is remembered; a collision only costs the dedupe it skips).
    pub repeated_keys: bool,
    /// The hashes of the staged keys, sorted: 8 bytes a row, kept so the
    /// merge can tell whether parts from several archives share a key.
    pub key_hashes: Vec<u64>,
}

impl StagedPart {
    /// Whether some key may occur in both parts (a hash collision only costs
    /// a dedupe that was not needed).
    pub fn may_share_keys(&self, other: &StagedPart) -> bool {
        let (small, large) = if self.key_hashes.len() <= other.key_hashes.len() {
            (&self.key_hashes, &other.key_hashes)
        } else {
            (&other.key_hashes, &self.key_hashes)
        };
        small.iter().any(|h| large.binary_search(h).is_ok())
    }
}

/// Hashes of the keys staged for one partition, in staging order; sorted
/// once at the end (a repeat shows as two equal neighbours), which is cheaper
/// in time and memory than a hash set per row.
type SeenKeys = Vec<u64>;

/// One partition's staging file while it is written.
struct StagingFile {
    writer: FileWriter<BufWriter<File>>,
    path: PathBuf,
    rows: u64,
    seen: SeenKeys,
}

/// Writes staged rows, one file per partition.
pub struct Stager {
    dir: PathBuf,
    spec: TableSpec,
    staged_schema: SchemaRef,
    owner_fallback: String,
    writers: HashMap<PartitionKey, StagingFile>,
    month: MonthCache,
    /// The archive's ordinal in the run, the high bits of each row's priority.
    archive: u64,
}

impl Stager {
    /// `archive` is the archive's ordinal in the run: rows of later archives
    /// win over rows of earlier ones when they share a key.
    pub fn new(dir: &Path, spec: TableSpec, owner_fallback: String, archive: u64) -> Self {
        Stager {
            dir: dir.to_path_buf(),
            staged_schema: staged_schema(&spec),
            spec,
            owner_fallback,
            writers: HashMap::new(),
            month: MonthCache::default(),
            archive,
        }
    }

    /// Routes each row of the batch to its partition's staging file.
    pub fn push(&mut self, parsed: ParsedBatch) -> anyhow::Result<()> {
        let batch = &parsed.batch;
        let times = batch
            .column_by_name(self.spec.time_column)
            .context("time column missing")?
            .as_primitive::<crate::table::TimeType>();
        let owners = batch
            .column_by_name(self.spec.owner_column)
            .context("owner column missing")?
            .as_string::<i32>();
        let keys = key_bytes(
            batch
                .column_by_name(self.spec.key_column)
                .context("key column missing")?,
        )?;
        // Group row indices by partition, looking keys up only when they change.
        let mut groups: Vec<(PartitionKey, Vec<u32>)> = Vec::new();
        let mut last: Option<(Option<&str>, (i32, u32), usize)> = None;
        for row in 0..batch.num_rows() {
            let owner = owners.is_valid(row).then(|| owners.value(row));
            let month = self.month.year_month(times.value(row))?;
            let group = match last {
                Some((o, m, g)) if o == owner && m == month => g,
                _ => {
                    let key = PartitionKey {
                        year: month.0,
                        month: month.1,
                        owner: owner.unwrap_or(&self.owner_fallback).to_string(),
                    };
                    match groups.iter().position(|(k, _)| *k == key) {
                        Some(g) => g,
                        None => {
                            groups.push((key, Vec::new()));
                            groups.len() - 1
                        }
                    }
                }
            };
            groups[group].1.push(row as u32);
            last = Some((owner, month, group));
        }
        let base = (self.archive << ENTRY_BITS) + parsed.first_entry;
        for (key, rows) in groups {
            let entries = UInt64Array::from_iter_values(rows.iter().map(|&r| base + r as u64));
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                // A filter copies each run of kept rows at once, where `take`
                // copies row by row: most batches of a month's archive lose
                // only a few late rows to the month before.
                let mut keep = BooleanBufferBuilder::new(batch.num_rows());
                keep.append_n(batch.num_rows(), false);
                for &row in &rows {
                    keep.set_bit(row as usize, true);
                }
                filter_record_batch(batch, &BooleanArray::new(keep.finish(), None))?
            };
            let mut columns = part.columns().to_vec();
            columns.push(Arc::new(entries));
            let staged = RecordBatch::try_new(self.staged_schema.clone(), columns)?;
            let file = self.file(key)?;
            file.writer.write(&staged)?;
            file.rows += staged.num_rows() as u64;
            let hasher = KeyHasher::default();
            file.seen
                .extend(rows.iter().map(|&row| hasher.hash_one(keys[row as usize])));
        }
        Ok(())
    }

    fn file(&mut self, key: PartitionKey) -> anyhow::Result<&mut StagingFile> {
        if !self.writers.contains_key(&key) {
            let path = self.dir.join(format!("part-{}.arrow", self.writers.len()));
            let writer = create_staging_file(&path, &self.staged_schema)?;
            self.writers.insert(
                key.clone(),
                StagingFile {
                    writer,
                    path,
                    rows: 0,
                    seen: SeenKeys::default(),
                },
            );
        }
        Ok(self.writers.get_mut(&key).expect("inserted above"))
    }

    /// Closes every staging file; returns the parts by partition.
    pub fn finish(self) -> anyhow::Result<Vec<(PartitionKey, StagedPart)>> {
        let mut parts = Vec::with_capacity(self.writers.len());
        for (key, mut file) in self.writers {
            file.writer.finish()?;
            let mut key_hashes = file.seen;
            key_hashes.sort_unstable();
            let len = key_hashes.len();
            key_hashes.dedup();
            let repeated_keys = key_hashes.len() < len;
            parts.push((
                key,
                StagedPart {
                    path: file.path,
                    rows: file.rows,
                    repeated_keys,
                    key_hashes,
                },
            ));
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(parts)
    }
}

fn create_staging_file(
    path: &Path,
    schema: &Schema,
) -> anyhow::Result<FileWriter<BufWriter<File>>> {
    let file = File::create(path)
        .with_context(|| format!("cannot create staging file {}", path.display()))?;
    Ok(FileWriter::try_new_buffered(file, schema)?)
}

/// Maps timestamps to (year, month), remembering the last month's bounds:
/// consecutive events almost always fall in the same month.
#[derive(Default)]
struct MonthCache {
    start: i64,
    end: i64,
    year_month: (i32, u32),
}

impl MonthCache {
    fn year_month(&mut self, millis: i64) -> anyhow::Result<(i32, u32)> {
        if millis >= self.start && millis < self.end {
            return Ok(self.year_month);
        }
        let t = DateTime::<Utc>::from_timestamp_millis(millis)
            .with_context(|| format!("timestamp {millis} is out of range"))?;
        let first = Utc
            .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
            .single()
            .context("month start")?;
        let next = first + Months::new(1);
        self.start = first.timestamp_millis();
        self.end = next.timestamp_millis();
        self.year_month = (t.year(), t.month());
        Ok(self.year_month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_cache_handles_boundaries() {
        let mut m = MonthCache::default();
        let march_end = 1_711_929_599_000; // 2024-03-31T23:59:59Z
        assert_eq!(m.year_month(march_end).unwrap(), (2024, 3));
        assert_eq!(m.year_month(march_end + 1_000).unwrap(), (2024, 4));
        assert_eq!(m.year_month(march_end).unwrap(), (2024, 3));
        assert_eq!(m.year_month(-1).unwrap(), (1969, 12));
    }
}
