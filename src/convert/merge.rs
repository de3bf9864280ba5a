//! Phase 2 of a conversion: merge staged rows into a partition's data file.
//!
//! The new file holds every row of the old file and of the staged rows, once
//! per key (`id`): when a key comes again the staged (newest) row wins, and
//! among staged duplicates the later entry of the archive wins. Rows are
//! sorted by the table's sort columns (ending with the key, so the output is
//! deterministic); a new month file without repeated keys skips the dedupe.
//! DataFusion does the heavy lifting — its sorts spill to disk under the
//! session's memory limit, so a month of any size merges in bounded memory —
//! and the result streams into the month file, which appears in one step
//! (rename on disk, completed multipart upload on S3).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;

use object_store::path::Path as ObjectPath;

use super::stage::{ENTRY_COLUMN, StagedPart};
use crate::lake::Lake;
use crate::lake::commit::{CommittingWriter, MonthWriter};
use crate::lake::parquet::writer_properties;
use crate::table::TableSpec;

/// Row counts of one merged partition file.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeStats {
    pub rows_before: u64,
    pub rows_after: u64,
}

/// Quotes an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Merges the staged file into the month file at `target` of `lake` (which
/// may not exist yet).
pub async fn merge_into(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    staged: &StagedPart,
    target: &ObjectPath,
) -> anyhow::Result<MergeStats> {
    let repeated_keys = staged.repeated_keys;
    let staged = staged.path.as_path();
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

    let options = ParquetReadOptions::default();
    ctx.register_parquet(&new_table, path_str(staged)?, options.clone())
        .await
        .with_context(|| format!("cannot read staged rows {}", staged.display()))?;
    let target_url = lake.object_url(target);
    let rows_before = lake.row_count(target).await?;
    let has_old = rows_before.is_some();
    if has_old {
        ctx.register_parquet(&old_table, &target_url, options)
            .await
            .with_context(|| format!("cannot read {target_url}"))?;
    }
    let rows_before = rows_before.unwrap_or(0);

    let sql = if !has_old && !repeated_keys {
        // A new month file whose staged keys are all distinct: nothing to
        // dedupe, one sort.
        format!("SELECT {columns} FROM {new_table} ORDER BY {order}")
    } else {
        let sources = if has_old {
            format!(
                "SELECT {columns}, CAST(0 AS BIGINT) AS _order, CAST(0 AS BIGINT) AS _entry FROM {old_table} \
                 UNION ALL SELECT {columns}, CAST(1 AS BIGINT) AS _order, CAST({entry} AS BIGINT) AS _entry FROM {new_table}"
            )
        } else {
            format!(
                "SELECT {columns}, CAST(1 AS BIGINT) AS _order, CAST({entry} AS BIGINT) AS _entry FROM {new_table}"
            )
        };
        format!(
            "SELECT {columns} FROM (\
               SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _order DESC, _entry DESC) AS _rank \
               FROM ({sources})\
             ) WHERE _rank = 1 ORDER BY {order}"
        )
    };

    let result = write_query(ctx, lake, spec, &sql, target).await;
    let _ = ctx.deregister_table(&new_table);
    let _ = ctx.deregister_table(&old_table);
    let rows_after = result?;
    Ok(MergeStats {
        rows_before,
        rows_after,
    })
}

/// Runs `sql` and streams its rows into `target`, atomically replacing it.
async fn write_query(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    sql: &str,
    target: &ObjectPath,
) -> anyhow::Result<u64> {
    let df = ctx.sql(sql).await.context("cannot plan the merge")?;
    let mut stream = df.execute_stream().await.context("cannot run the merge")?;

    let sink = CommittingWriter::from(MonthWriter::create(lake, target).await?);
    let mut writer =
        AsyncArrowWriter::try_new(sink, spec.schema.clone(), Some(writer_properties(spec)))?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.context("merge failed")?;
        // The query's schema may mark columns nullable; the table's does not.
        let batch = RecordBatch::try_new(spec.schema.clone(), batch.columns().to_vec())
            .context("merged rows do not fit the table schema")?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await?;
    }
    // Completing the writer commits the file (rename or completed upload).
    writer
        .close()
        .await
        .with_context(|| format!("cannot replace {}", lake.object_url(target)))?;
    Ok(rows)
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{}: path is not valid UTF-8", path.display()))
}
