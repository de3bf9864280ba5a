//! The sort of a new month file: sort the keys alone, then gather each
//! output batch once from the staged files, mapped into memory.
//!
//! A month whose staged keys are all distinct and which has no file yet
//! (every month a run sees first) needs one sort and nothing else.
//! DataFusion's sort would read the staged files into memory, copy each batch
//! in sorted order, and copy again while merging the sorted batches, spilling
//! every copy to disk once the memory pool is short (a 200k-event month of
//! large events spilled under the default 512M: a tenth of a conversion's
//! CPU went to spills). Here the staged Arrow IPC files are mapped, the row
//! numbers are sorted by integer keys of the sort columns
//! ([`sort_order`](super::sort_order)), and each output batch is gathered
//! from the mapped batches: the only copy of a value is the one
//! the Parquet writer reads. Only the encoded keys and the order take
//! memory from the pool; the staged rows stay file pages, which the system
//! can drop and read again, so a month of any size sorts in bounded memory.
//! When the pool cannot hold the keys, the caller falls back to DataFusion.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use datafusion::arrow::ipc::convert::fb_to_schema;
use datafusion::arrow::ipc::reader::{FileDecoder, read_footer_length};
use datafusion::arrow::ipc::root_as_footer;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::gather::gather;
use super::sort_order::sort_order;
use super::stage::{ENTRY_COLUMN, StagedPart, archive_of};
use crate::table::TableSpec;

/// A new month's rows in the table's order, and how many rows each archive
/// brought (all of them are new).
pub struct SortedMonth {
    pub rows: SendableRecordBatchStream,
    pub new_by_archive: BTreeMap<u64, u64>,
}

/// Sorts the staged parts of a new month with distinct keys. `Ok(None)`:
/// the pool cannot hold the sort keys (the caller sorts with DataFusion,
/// which spills).
pub fn sort_new_month(
    pool: &Arc<dyn MemoryPool>,
    spec: &TableSpec,
    staged: &[&StagedPart],
    batch_size: usize,
) -> anyhow::Result<Option<SortedMonth>> {
    let mut batches = Vec::new();
    for part in staged {
        batches.extend(
            map_ipc_file(&part.path)
                .with_context(|| format!("cannot read staged rows {}", part.path.display()))?,
        );
    }
    let mut reservation = MemoryConsumer::new("month key sort").register(pool);
    let Some(order) = sort_order(spec, &batches, &mut reservation)? else {
        return Ok(None);
    };

    let mut new_by_archive = BTreeMap::new();
    for batch in &batches {
        let entries = batch
            .column_by_name(ENTRY_COLUMN)
            .context("staged rows without their entry column")?
            .as_primitive::<UInt64Type>();
        for entry in entries.values() {
            *new_by_archive.entry(archive_of(*entry)).or_insert(0) += 1;
        }
    }

    let schema: SchemaRef = spec.schema.clone();
    let width = schema.fields().len();
    let table_batches = batches
        .iter()
        .map(|b| b.project(&(0..width).collect::<Vec<_>>()))
        .collect::<Result<Vec<_>, _>>()?;
    // 4 bytes a row, inside the reservation the sort's scratch held.
    let text = text_lengths(&table_batches);
    let limits = BatchLimits {
        rows: batch_size.max(1),
        bytes: BATCH_TEXT_BYTES,
    };
    let gather_schema = schema.clone();
    let mut next = 0;
    let rows = futures::stream::poll_fn(move |_| {
        // The order's memory stays reserved until the last batch is out.
        let _held = &reservation;
        if next == order.len() {
            return std::task::Poll::Ready(None);
        }
        let end = limits.end(&order, next, |(b, r)| text[b][r] as usize);
        let gathered = gather(gather_schema.clone(), &table_batches, &order[next..end]);
        next = end;
        std::task::Poll::Ready(Some(gathered.map_err(Into::into)))
    });
    Ok(Some(SortedMonth {
        rows: Box::pin(RecordBatchStreamAdapter::new(schema, rows)),
        new_by_archive,
    }))
}

/// Text a gathered batch may hold: a month of large entries (up to
/// `--max-entry-size` each) comes out in batches of fewer rows, so one batch
/// neither outgrows memory nor overflows Arrow's 32-bit string offsets.
const BATCH_TEXT_BYTES: usize = 32 << 20;

/// How many rows and bytes of text one gathered batch may hold.
#[derive(Clone, Copy)]
struct BatchLimits {
    rows: usize,
    bytes: usize,
}

impl BatchLimits {
    /// The end of the batch of `order` that starts at `start`: at least
    /// one row, and no more rows or text than the limits.
    fn end(
        &self,
        order: &[(usize, usize)],
        start: usize,
        text: impl Fn((usize, usize)) -> usize,
    ) -> usize {
        let last = order.len().min(start + self.rows);
        let mut bytes = 0;
        for (i, &at) in order[start..last].iter().enumerate() {
            bytes += text(at);
            if bytes > self.bytes && i > 0 {
                return start + i;
            }
        }
        last
    }
}

/// The text bytes of each row of each batch (its string and binary columns'
/// values), counted in one pass down each column's offsets: the order visits
/// rows at random, and reading a dozen offset buffers per row there cost ~3%
/// of a conversion's CPU in cache misses. Saturates, which only ever means
/// "over the limit".
fn text_lengths(batches: &[RecordBatch]) -> Vec<Vec<u32>> {
    batches
        .iter()
        .map(|batch| {
            let mut lengths = vec![0u32; batch.num_rows()];
            for column in batch.columns() {
                let offsets: &OffsetBuffer<i32> = match column.data_type() {
                    DataType::Utf8 => column.as_string::<i32>().offsets(),
                    DataType::Binary => column.as_binary::<i32>().offsets(),
                    _ => continue,
                };
                for (length, pair) in lengths.iter_mut().zip(offsets.windows(2)) {
                    *length = length.saturating_add((pair[1] - pair[0]) as u32);
                }
            }
            lengths
        })
        .collect()
}

/// The record batches of an Arrow IPC file this run staged, mapped rather
/// than read: their buffers point into the file's pages.
fn map_ipc_file(path: &Path) -> anyhow::Result<Vec<RecordBatch>> {
    let file = File::open(path)?;
    // SAFETY: the staging file is this run's own, in the scratch directory
    // the run holds locked; it was written and closed before the merge, and
    // nothing writes or truncates it while it is mapped.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let buffer = Buffer::from(bytes::Bytes::from_owner(map));
    anyhow::ensure!(
        buffer.len() >= 10,
        "an Arrow IPC file of {} bytes",
        buffer.len()
    );
    let trailer_start = buffer.len() - 10;
    let trailer: [u8; 10] = buffer[trailer_start..].try_into()?;
    let footer_len = read_footer_length(trailer)?;
    let footer_start = trailer_start
        .checked_sub(footer_len)
        .context("the IPC footer is longer than the file")?;
    let footer = root_as_footer(&buffer[footer_start..trailer_start])
        .map_err(|e| anyhow::anyhow!("invalid IPC footer: {e}"))?;
    let schema = Arc::new(fb_to_schema(
        footer.schema().context("IPC footer without a schema")?,
    ));
    let mut decoder = FileDecoder::new(schema, footer.version());
    let block_data = |block: &datafusion::arrow::ipc::Block| {
        let start = usize::try_from(block.offset()).ok();
        let len = block.bodyLength() as usize + block.metaDataLength() as usize;
        match start {
            Some(start)
                if start
                    .checked_add(len)
                    .is_some_and(|end| end <= footer_start) =>
            {
                Ok(buffer.slice_with_length(start, len))
            }
            _ => Err(anyhow::anyhow!("an IPC block past the end of the file")),
        }
    };
    for block in footer.dictionaries().iter().flatten() {
        decoder.read_dictionary(block, &block_data(block)?)?;
    }
    let mut batches = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        let data = block_data(block)?;
        if let Some(batch) = decoder.read_record_batch(block, &data)?
            && batch.num_rows() > 0
        {
            batches.push(batch);
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampMillisecondArray, UInt64Array};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::arrow::ipc::writer::FileWriter;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use futures::TryStreamExt;

    use crate::convert::stage::ENTRY_BITS;

    fn spec() -> TableSpec {
        let mut spec = crate::source::heroku::table_spec();
        spec.schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("app", DataType::Utf8, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        ]));
        spec.sort_columns = &["app", "t", "id"];
        spec.key_column = "id";
        spec
    }

    /// Stages `batches` of (id, app, t) rows of `archive` as one IPC file.
    fn stage(dir: &Path, archive: u64, batches: &[&[(&str, Option<&str>, i64)]]) -> StagedPart {
        let schema = crate::convert::stage::staged_schema(&spec());
        let path = dir.join(format!("part-{archive}.arrow"));
        let mut writer = FileWriter::try_new(File::create(&path).unwrap(), &schema).unwrap();
        let mut entry = archive << ENTRY_BITS;
        let mut rows = 0;
        for rows_of_batch in batches {
            let entries: Vec<u64> = rows_of_batch
                .iter()
                .map(|_| {
                    entry += 1;
                    entry
                })
                .collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        rows_of_batch.iter().map(|r| r.0),
                    )),
                    Arc::new(StringArray::from_iter(rows_of_batch.iter().map(|r| r.1))),
                    Arc::new(TimestampMillisecondArray::from_iter_values(
                        rows_of_batch.iter().map(|r| r.2),
                    )),
                    Arc::new(UInt64Array::from(entries)),
                ],
            )
            .unwrap();
            rows += batch.num_rows() as u64;
            writer.write(&batch).unwrap();
        }
        writer.finish().unwrap();
        StagedPart {
            path,
            rows,
            repeated_keys: false,
            key_hashes: Vec::new(),
        }
    }

    fn two_archives(dir: &Path) -> (StagedPart, StagedPart) {
        let a = stage(
            dir,
            0,
            &[
                &[("e1", Some("b"), 30), ("e2", None, 10)],
                &[("e3", Some("a"), 20)],
            ],
        );
        let b = stage(
            dir,
            1,
            &[&[
                ("e4", Some("a"), 20),
                ("e5", Some("b"), 5),
                ("e6", Some("a"), 10),
            ]],
        );
        (a, b)
    }

    #[tokio::test]
    async fn rows_come_out_in_the_table_order_in_batches_of_the_given_size() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_archives(dir.path());
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let sorted = sort_new_month(&pool, &spec(), &[&a, &b], 4)
            .unwrap()
            .expect("the keys fit");
        assert_eq!(sorted.new_by_archive, BTreeMap::from([(0, 3), (1, 3)]));
        let batches: Vec<RecordBatch> = sorted.rows.try_collect().await.unwrap();
        assert_eq!(
            batches
                .iter()
                .map(RecordBatch::num_rows)
                .collect::<Vec<_>>(),
            [4, 2]
        );
        assert_eq!(
            batches[0].schema(),
            spec().schema,
            "the entry column is dropped"
        );
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>();
                ids.iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        // app a by time then id (e6 at 10; e3 and e4 both at 20), then b, then no app.
        assert_eq!(ids, ["e6", "e3", "e4", "e5", "e1", "e2"]);
        assert_eq!(pool.reserved(), 0, "the order's memory is released");
    }

    #[test]
    fn a_batch_ends_at_its_row_or_text_limit_and_holds_at_least_one_row() {
        let order: Vec<(usize, usize)> = (0..6).map(|r| (0, r)).collect();
        // Row r holds 10 * (r + 1) bytes of text.
        let text = |(_, r): (usize, usize)| 10 * (r + 1);
        let limits = BatchLimits { rows: 4, bytes: 35 };
        // 10 + 20 = 30; a third row would make 60.
        assert_eq!(limits.end(&order, 0, text), 2);
        // Row 2 alone (30) fits; with row 3, 70 does not.
        assert_eq!(limits.end(&order, 2, text), 3);
        // Row 3 alone is 40, over the limit, and still makes a batch.
        assert_eq!(limits.end(&order, 3, text), 4);
        let rows_only = BatchLimits {
            rows: 4,
            bytes: usize::MAX,
        };
        assert_eq!(rows_only.end(&order, 0, text), 4);
        assert_eq!(rows_only.end(&order, 4, text), 6);
        let lengths = text_lengths(&[RecordBatch::try_from_iter([
            (
                "s",
                Arc::new(StringArray::from(vec![Some("abc"), None, Some("")])) as _,
            ),
            ("n", Arc::new(UInt64Array::from(vec![7, 8, 9])) as _),
            (
                "t",
                Arc::new(StringArray::from(vec![Some("de"), Some("f"), None])) as _,
            ),
        ])
        .unwrap()
        .slice(1, 2)]);
        assert_eq!(lengths, [vec![1, 0]]);
    }

    #[test]
    fn keys_that_do_not_fit_the_pool_are_left_to_datafusion() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_archives(dir.path());
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        assert!(
            sort_new_month(&pool, &spec(), &[&a, &b], 4)
                .unwrap()
                .is_none()
        );
        assert_eq!(pool.reserved(), 0);
    }

    #[test]
    fn a_truncated_staging_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = two_archives(dir.path());
        let bytes = std::fs::read(&a.path).unwrap();
        std::fs::write(&a.path, &bytes[..bytes.len() - 20]).unwrap();
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let e = sort_new_month(&pool, &spec(), &[&a], 4)
            .err()
            .expect("an error");
        assert!(
            format!("{e:#}").contains("cannot read staged rows"),
            "{e:#}"
        );
    }
}
