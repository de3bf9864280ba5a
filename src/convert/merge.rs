//! Phase 2 of a conversion: merge staged rows into a partition's data file.
//!
//! The new file holds every row of the old file and of the staged parts (one
//! per archive of the run that had rows for this partition), once per key
//! (`id`): when a key comes again the newest row wins — staged over old, a
//! later archive over an earlier one, a later entry over an earlier one.
//! Rows are sorted by the table's sort columns (ending with the key, so the
//! output is deterministic); a new month file whose staged keys are all
//! distinct skips the dedupe and is sorted once, by its keys alone
//! ([`super::key_sort`]: the staged files are mapped and each output batch
//! gathered from them once). Everything else is DataFusion's — its sorts
//! spill to disk under the session's memory limit, so a month of any size
//! merges in bounded memory — and the result streams into the month file,
//! which appears in one step (rename on disk, completed multipart upload on
//! S3).

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::Column;
use datafusion::execution::options::ArrowReadOptions;
use datafusion::logical_expr::Expr;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use futures::StreamExt;

use object_store::path::Path as ObjectPath;

use super::key_sort;
use super::stage::{ENTRY_COLUMN, KeyHasher, StagedPart, archive_of, key_bytes};
use crate::lake::commit::{CommittingWriter, ObjectWriter};
use crate::lake::integrity::{ByteDigest, ContentDigest, FileRecord};
use crate::lake::parquet::writer_options;
use crate::lake::{FileFacts, Lake};
use crate::table::{TableSpec, ident};

/// Row counts of one merged partition file.
#[derive(Debug, Clone)]
pub struct MergeStats {
    pub rows_after: u64,
    /// Keys new to the file, by the ordinal of the archive that first had them.
    pub new_by_archive: BTreeMap<u64, u64>,
    /// The file written, as the integrity log records it.
    pub file: FileRecord,
}

/// Output column of the merge query: the priority of the first row seen with
/// the kept row's key (-1 when the key was already in the old file), which
/// tells which archive brought the key. Counted, then dropped before writing.
const FIRST_COLUMN: &str = "_first";

/// Merges the staged parts (in run order) into the month file at `target` of
/// `lake`; `old` describes the file there (None: it does not exist yet).
pub async fn merge_into(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    staged: &[&StagedPart],
    target: &ObjectPath,
    old: Option<&FileFacts>,
) -> anyhow::Result<MergeStats> {
    let repeated_keys = staged.iter().any(|p| p.repeated_keys)
        || staged
            .iter()
            .enumerate()
            .any(|(i, a)| staged[i + 1..].iter().any(|b| a.may_share_keys(b)));
    if old.is_none() && !repeated_keys {
        let pool = ctx.runtime_env().memory_pool.clone();
        let batch_size = ctx.state().config().batch_size();
        if let Some(sorted) = key_sort::sort_new_month(&pool, spec, staged, batch_size)? {
            let (file, _) = write_stream(lake, spec, sorted.rows, target).await?;
            return Ok(MergeStats {
                rows_after: file.rows,
                new_by_archive: sorted.new_by_archive,
                file,
            });
        }
        tracing::debug!("the sort keys do not fit the memory pool: DataFusion sorts the month");
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let new_table = format!("merge_new_{n}");
    let old_table = format!("merge_old_{n}");

    let columns: Vec<String> = spec
        .schema
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect();
    let columns = columns.join(", ");
    let key = ident(spec.key_column);
    let order: Vec<String> = spec
        .sort_columns
        .iter()
        .map(|c| format!("{} ASC NULLS LAST", ident(c)))
        .collect();
    let order = order.join(", ");
    let entry = ident(ENTRY_COLUMN);

    let paths = staged
        .iter()
        .map(|p| {
            let path = &p.path;
            path.to_str()
                .map(str::to_string)
                .with_context(|| format!("{}: path is not valid UTF-8", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let new_rows = ctx
        .read_arrow(paths, ArrowReadOptions::default())
        .await
        .context("cannot read the staged rows")?;
    ctx.register_table(&new_table, new_rows.into_view())?;
    let target_url = lake.object_url(target);
    let has_old = old.is_some();
    if let Some(old) = old {
        old.check_layout(&spec.schema, &target_url)?;
        let mut options = ParquetReadOptions::default();
        // A file this version wrote declares the table's order: the merge
        // then streams it instead of sorting it again.
        if old
            .sorted_by
            .iter()
            .map(String::as_str)
            .eq(spec.sort_columns.iter().copied())
        {
            options = options.file_sort_order(vec![
                spec.sort_columns
                    .iter()
                    .map(|c| Expr::Column(Column::new_unqualified(*c)).sort(true, false))
                    .collect(),
            ]);
        }
        ctx.register_parquet(&old_table, &target_url, options)
            .await
            .with_context(|| format!("cannot read {target_url}"))?;
    }

    let shares_keys = has_old
        && !repeated_keys
        && old_shares_keys(ctx, &old_table, spec.key_column, staged).await?;
    let sql = MergeSql {
        columns: &columns,
        key: &key,
        order: &order,
        entry: &entry,
        new_table: &new_table,
        old_table: &old_table,
    }
    .sql(MergeKind::choose(has_old, repeated_keys, shares_keys));

    let result = match ctx.sql(&sql).await.context("cannot plan the merge") {
        Ok(df) => write_frame(lake, spec, df, target).await,
        Err(e) => Err(e),
    };
    let _ = ctx.deregister_table(&new_table);
    let _ = ctx.deregister_table(&old_table);
    let (file, new_by_archive) = result?;
    Ok(MergeStats {
        rows_after: file.rows,
        new_by_archive,
        file,
    })
}

/// How a partition merges, chosen from what is known before a row is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MergeKind {
    /// A new month file whose staged keys are all distinct: nothing to
    /// dedupe, one sort.
    Sort,
    /// New rows for an existing month (the events of the month before,
    /// which every monthly archive has), none of them already there:
    /// nothing to dedupe; the old file is merged in order, not sorted.
    Append,
    /// Keys repeat: per key, the last row in priority order is kept (old
    /// rows first), and the first row says who brought the key.
    Dedupe { has_old: bool },
}

impl MergeKind {
    /// `shares_keys`: whether the old file may hold a staged key (only
    /// looked at when the file exists and the staged keys are distinct).
    fn choose(has_old: bool, repeated_keys: bool, shares_keys: bool) -> MergeKind {
        match (has_old, repeated_keys) {
            (false, false) => MergeKind::Sort,
            (true, false) if !shares_keys => MergeKind::Append,
            _ => MergeKind::Dedupe { has_old },
        }
    }
}

/// The quoted names a merge's SQL is made of.
struct MergeSql<'a> {
    columns: &'a str,
    key: &'a str,
    order: &'a str,
    entry: &'a str,
    new_table: &'a str,
    old_table: &'a str,
}

impl MergeSql<'_> {
    fn sql(&self, kind: MergeKind) -> String {
        let MergeSql {
            columns,
            key,
            order,
            entry,
            new_table,
            old_table,
        } = self;
        match kind {
            MergeKind::Sort => format!(
                "SELECT {columns}, CAST({entry} AS BIGINT) AS {FIRST_COLUMN} FROM {new_table} ORDER BY {order}"
            ),
            MergeKind::Append => format!(
                "SELECT {columns}, CAST(-1 AS BIGINT) AS {FIRST_COLUMN} FROM {old_table} \
                 UNION ALL \
                 SELECT {columns}, CAST({entry} AS BIGINT) AS {FIRST_COLUMN} FROM {new_table} \
                 ORDER BY {order}"
            ),
            MergeKind::Dedupe { has_old } => {
                let mut sources =
                    format!("SELECT {columns}, CAST({entry} AS BIGINT) AS _prio FROM {new_table}");
                if has_old {
                    sources = format!(
                        "SELECT {columns}, CAST(-1 AS BIGINT) AS _prio FROM {old_table} UNION ALL {sources}"
                    );
                }
                format!(
                    "SELECT {columns}, {FIRST_COLUMN} FROM (\
                       SELECT *, \
                         lead(_prio) OVER (PARTITION BY {key} ORDER BY _prio) AS _next, \
                         first_value(_prio) OVER (PARTITION BY {key} ORDER BY _prio \
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {FIRST_COLUMN} \
                       FROM ({sources})\
                     ) WHERE _next IS NULL ORDER BY {order}"
                )
            }
        }
    }
}

/// Whether a key of the old file may also be among the staged keys (a hash
/// collision only costs the dedupe it did not need). Reads the key column
/// alone, stopping at the first match.
async fn old_shares_keys(
    ctx: &SessionContext,
    old_table: &str,
    key_column: &str,
    staged: &[&StagedPart],
) -> anyhow::Result<bool> {
    let mut keys = ctx
        .sql(&format!("SELECT {} FROM {old_table}", ident(key_column)))
        .await?
        .execute_stream()
        .await?;
    let hasher = KeyHasher::default();
    while let Some(batch) = keys.next().await {
        let batch = batch.context("cannot read the keys of the old file")?;
        for key in key_bytes(batch.column(0))? {
            let hash = hasher.hash_one(key);
            if staged
                .iter()
                .any(|p| p.key_hashes.binary_search(&hash).is_ok())
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Runs `df` and streams its rows into `target`, atomically replacing it.
/// `df` yields the table's columns, optionally followed by
/// [`FIRST_COLUMN`], whose counts by archive are returned.
pub async fn write_frame(
    lake: &Lake,
    spec: &TableSpec,
    df: DataFrame,
    target: &ObjectPath,
) -> anyhow::Result<(FileRecord, BTreeMap<u64, u64>)> {
    if tracing::enabled!(tracing::Level::TRACE) {
        let plan = df.clone().create_physical_plan().await?;
        tracing::trace!(
            "merge plan:\n{}",
            datafusion::physical_plan::displayable(plan.as_ref()).indent(false)
        );
    }
    let stream = df.execute_stream().await.context("cannot run the merge")?;
    write_stream(lake, spec, stream, target).await
}

/// Streams `stream`'s rows into `target`, atomically replacing it; the
/// columns are [`write_frame`]'s.
async fn write_stream(
    lake: &Lake,
    spec: &TableSpec,
    mut stream: SendableRecordBatchStream,
    target: &ObjectPath,
) -> anyhow::Result<(FileRecord, BTreeMap<u64, u64>)> {
    let bytes = ByteDigest::default();
    let sink = CommittingWriter::new(ObjectWriter::create(lake, target).await?, bytes.clone());
    let mut content = ContentDigest::new(&spec.schema);
    let mut writer =
        AsyncArrowWriter::try_new_with_options(sink, spec.schema.clone(), writer_options(spec))?;
    // Encoding runs in its own task, so a month's merged rows are produced
    // (DataFusion's merge of sorted runs) and encoded (zstd, dictionaries,
    // statistics) on two cores at once; a large merge, which holds every
    // permit, used to leave one core idle. The task hands the writer back
    // unfinished: only a merge that read to the end commits the file.
    let (batches, mut to_encode) = tokio::sync::mpsc::channel::<RecordBatch>(2);
    let encoder = tokio::spawn(async move {
        while let Some(batch) = to_encode.recv().await {
            writer.write(&batch).await?;
        }
        Ok::<_, datafusion::parquet::errors::ParquetError>(writer)
    });
    let mut rows = 0u64;
    let mut new_by_archive = BTreeMap::new();
    let width = spec.schema.fields().len();
    let produced = async {
        while let Some(batch) = stream.next().await {
            let batch = batch.context("merge failed")?;
            if let Some(first) = batch.columns().get(width) {
                let first = first.as_primitive::<Int64Type>();
                for priority in first.iter().flatten().filter(|p| *p >= 0) {
                    *new_by_archive
                        .entry(archive_of(priority as u64))
                        .or_insert(0) += 1;
                }
            }
            // The query's schema may mark columns nullable; the table's does not.
            let batch =
                RecordBatch::try_new(spec.schema.clone(), batch.columns()[..width].to_vec())
                    .context("merged rows do not fit the table schema")?;
            rows += batch.num_rows() as u64;
            content.update(&batch)?;
            if batches.send(batch).await.is_err() {
                // The encoder stopped: its error says why.
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    drop(batches);
    let encoded = encoder.await.context("the parquet encoder panicked")?;
    produced?;
    let writer = encoded.context("cannot encode the month file")?;
    // Completing the writer commits the file (rename or completed upload).
    writer
        .close()
        .await
        .with_context(|| format!("cannot replace {}", lake.object_url(target)))?;
    let (sha256, size) = bytes.finish();
    let file = FileRecord {
        path: lake.relative(target),
        sha256,
        size,
        rows,
        content: content.finish(),
    };
    Ok((file, new_by_archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_dedupes_only_when_a_key_may_repeat() {
        use MergeKind::*;
        let cases = [
            // (has_old, repeated_keys, shares_keys) -> kind
            ((false, false, false), Sort),
            ((false, true, false), Dedupe { has_old: false }),
            ((true, false, false), Append),
            ((true, false, true), Dedupe { has_old: true }),
            ((true, true, false), Dedupe { has_old: true }),
            ((true, true, true), Dedupe { has_old: true }),
        ];
        for ((has_old, repeated, shares), kind) in cases {
            assert_eq!(
                MergeKind::choose(has_old, repeated, shares),
                kind,
                "{has_old} {repeated} {shares}"
            );
        }
    }

    #[test]
    fn each_kind_reads_what_it_must() {
        let names = MergeSql {
            columns: "\"id\", \"v\"",
            key: "\"id\"",
            order: "\"id\" ASC NULLS LAST",
            entry: "\"_entry\"",
            new_table: "n",
            old_table: "o",
        };
        assert_eq!(
            names.sql(MergeKind::Sort),
            format!(
                "SELECT \"id\", \"v\", CAST(\"_entry\" AS BIGINT) AS {FIRST_COLUMN} FROM n ORDER BY \"id\" ASC NULLS LAST"
            )
        );
        let append = names.sql(MergeKind::Append);
        assert!(append.contains(" FROM o UNION ALL SELECT "), "{append}");
        assert!(!append.contains("OVER"), "{append}");
        let fresh = names.sql(MergeKind::Dedupe { has_old: false });
        assert!(
            fresh.contains("lead(_prio) OVER (PARTITION BY \"id\" ORDER BY _prio)"),
            "{fresh}"
        );
        assert!(!fresh.contains("FROM o"), "{fresh}");
        let both = names.sql(MergeKind::Dedupe { has_old: true });
        assert!(
            both.contains("CAST(-1 AS BIGINT) AS _prio FROM o UNION ALL SELECT"),
            "{both}"
        );
    }
}
