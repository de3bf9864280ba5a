//! A scan's files are handed out to its partitions in pieces of about a row
//! group, on enough partitions to finish together.
//!
//! DataFusion splits a scan's files into one byte range per partition, and
//! its partitions then take ranges from one shared queue as they go idle
//! (`enable_file_stream_work_stealing`). With ranges that large, stealing
//! unbalances as often as it balances: an actor's quarter over 12 × 1M
//! events is three month files split into four ranges (a whole month, two
//! halves, a whole month), and the partition that finished its first range
//! early took the next two, so one core read eight row groups and the other
//! four, and sat idle for a third of the query (49.8k of the 74.6k rows in
//! one partition, `EXPLAIN ANALYZE VERBOSE`). [`ScanPieces`] joins each
//! file's ranges again and cuts the files into [`PIECES_PER_PARTITION`]
//! pieces a partition, so the last piece anyone takes is small. A row
//! group belongs to the piece holding its first byte, as with DataFusion's
//! own ranges, so every row is still read once; a piece holding no row
//! group's start reads only the (cached) footer.
//!
//! Where the pieces are too few to share out evenly (three single-row-group
//! months on two partitions), the scan gets a partition per piece, up to
//! twice the planned count ([`partitions_for`]). Every operator above a
//! scan takes its partition count from its input, and the rule runs last,
//! after every distribution was enforced; the scans it changes have at
//! least two partitions, so what needs one partition already merges them.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Pieces per partition: with eight, the piece a partition is left reading
/// while the other has nothing left is at most about a sixteenth of the
/// scan on two cores.
const PIECES_PER_PARTITION: u64 = 8;

/// No piece is cut smaller than this, the size from which the engine lets
/// DataFusion split a file at all: a lake file's row group is 7-9 MiB of
/// 262,144 events, and a smaller piece only adds an open of the file (a
/// 200k-event month, one row group, stays whole).
const MIN_PIECE_BYTES: u64 = super::SPLIT_FILES_FROM_BYTES as u64;

/// The physical optimizer rule: cuts the ranges of every scan whose
/// partitions share their files into pieces. Scans that keep files in
/// their partitions (an order to preserve, a declared partitioning, a
/// limit, or stealing turned off) are left as DataFusion planned them.
#[derive(Debug)]
pub struct ScanPieces {
    /// [`MIN_PIECE_BYTES`], smaller in tests of small files.
    min_piece_bytes: u64,
}

impl Default for ScanPieces {
    fn default() -> Self {
        ScanPieces {
            min_piece_bytes: MIN_PIECE_BYTES,
        }
    }
}

impl PhysicalOptimizerRule for ScanPieces {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.execution.enable_file_stream_work_stealing {
            return Ok(plan);
        }
        plan.transform_up(|node| match in_pieces(&node, self.min_piece_bytes) {
            Some(replaced) => Ok(Transformed::yes(replaced)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "scan_pieces"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with its ranges cut into pieces, when it is a file scan whose
/// partitions take their files from one shared queue and a range is worth
/// cutting.
fn in_pieces(
    node: &Arc<dyn ExecutionPlan>,
    min_piece_bytes: u64,
) -> Option<Arc<dyn ExecutionPlan>> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    // DataFusion shares a scan's files between its partitions only then
    // (`FileScanConfig::create_sibling_state`); a limit stops at the first
    // rows, where pieces buy nothing.
    if config.preserve_order
        || config.output_partitioning.is_some()
        || config.limit.is_some()
        || config.file_groups.len() < 2
    {
        return None;
    }
    let total: u64 = config
        .file_groups
        .iter()
        .flat_map(FileGroup::iter)
        .map(range_bytes)
        .sum();
    let piece =
        (total / (config.file_groups.len() as u64 * PIECES_PER_PARTITION)).max(min_piece_bytes);
    let pieces: Vec<PartitionedFile> = joined(config.file_groups.iter().flat_map(FileGroup::iter))
        .iter()
        .flat_map(|file| cut(file, piece))
        .collect();
    let sizes: Vec<u64> = pieces.iter().map(range_bytes).collect();
    let groups = in_groups(pieces, partitions_for(&sizes, config.file_groups.len()));
    if layout(&groups) == layout(&config.file_groups) {
        return None;
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups)
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// Each file's touching ranges joined into one, in the order the files
/// first come. DataFusion splits by bytes alone: a 200k-event month, one
/// row group of 7 MB, is cut in two ranges of which the second holds no
/// row group's start and reads nothing. Joined, a file's work is where its
/// bytes are, and [`cut`] then cuts it by the pieces' size.
fn joined<'a>(files: impl Iterator<Item = &'a PartitionedFile>) -> Vec<PartitionedFile> {
    let mut joined: Vec<PartitionedFile> = Vec::new();
    // Where each file's last range ends, and which of `joined` it is.
    let mut ends: HashMap<(&object_store::path::Path, i64), usize> = HashMap::new();
    for file in files {
        let location = &file.object_meta.location;
        let Some(range) = &file.range else {
            joined.push(file.clone());
            continue;
        };
        let at = match ends.remove(&(location, range.start)) {
            Some(at) => {
                joined[at].range.as_mut().expect("a joined range").end = range.end;
                at
            }
            None => {
                joined.push(file.clone());
                joined.len() - 1
            }
        };
        ends.insert((location, range.end), at);
    }
    joined
}

/// What a scan's groups read: each piece's file and range, by group.
fn layout(groups: &[FileGroup]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|group| {
            group
                .iter()
                .map(|file| format!("{} {:?}", file.object_meta.location, file.range()))
                .collect()
        })
        .collect()
}

/// How many partitions share `pieces` (their sizes, in queue order) that
/// were planned over `planned`: more than planned when the pieces are too
/// few to balance. Three 200k-event months are three single-row-group
/// files; on two partitions one core reads two of them while the other
/// reads one and then waits (a makespan of two files where 1.5 is the
/// ideal). With a partition per piece, up to twice the planned count,
/// tokio interleaves them on the cores and they finish together.
fn partitions_for(pieces: &[u64], planned: usize) -> usize {
    if pieces.len() <= planned || planned == 0 {
        return planned;
    }
    let total: u64 = pieces.iter().sum();
    // Each partition takes the next piece of the shared queue when it is
    // done with its last one.
    let mut done_at = vec![0u64; planned];
    for &bytes in pieces {
        let first_free = done_at.iter_mut().min().expect("planned > 0");
        *first_free += bytes;
    }
    let makespan = *done_at.iter().max().expect("planned > 0");
    let ideal = total.div_ceil(planned as u64);
    // Within 15% of the ideal, the planned partitions are kept: every
    // partition more is one more decoder and one more input to merge.
    if makespan * 100 <= ideal * 115 {
        return planned;
    }
    pieces.len().min(2 * planned)
}

/// `pieces` in `partitions` groups of consecutive pieces, as equal in
/// count as can be. The groups only set how many partitions the scan has:
/// all of them take their pieces from one queue, in this order.
fn in_groups(pieces: Vec<PartitionedFile>, partitions: usize) -> Vec<FileGroup> {
    let count = pieces.len();
    let mut pieces = pieces.into_iter();
    (0..partitions)
        .map(|i| {
            let take = count / partitions + usize::from(i < count % partitions);
            FileGroup::new(pieces.by_ref().take(take).collect())
        })
        .collect()
}

/// The bytes of `file` its scan reads (its range, or all of it).
fn range_bytes(file: &PartitionedFile) -> u64 {
    let (start, end) = file.range();
    end.saturating_sub(start)
}

/// `file`'s range cut into pieces of about equal size, none larger than
/// `piece` bytes, in order.
fn cut(file: &PartitionedFile, piece: u64) -> Vec<PartitionedFile> {
    let (start, end) = file.range();
    let bytes = end.saturating_sub(start);
    let count = bytes.div_ceil(piece.max(1)).max(1);
    if count == 1 {
        return vec![file.clone()];
    }
    let size = bytes.div_ceil(count);
    (0..count)
        .map(|i| {
            let from = start + i * size;
            let to = (from + size).min(end);
            let mut part = file.clone();
            part.range = Some(FileRange {
                start: from as i64,
                end: to as i64,
            });
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use datafusion::execution::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// Rows in each file: `v` runs 0..20,000 in the first, 20,000..40,000
    /// in the second, and so on.
    const ROWS: i64 = 20_000;

    fn file(size: u64, range: Option<(i64, i64)>) -> PartitionedFile {
        let file = PartitionedFile::new("heroku/year=2024/month=3/acme.parquet", size);
        match range {
            Some((start, end)) => file.with_range(start, end),
            None => file,
        }
    }

    fn ranges(pieces: &[PartitionedFile]) -> Vec<(i64, i64)> {
        pieces
            .iter()
            .map(|p| {
                let r = p.range.as_ref().expect("a piece has a range");
                (r.start, r.end)
            })
            .collect()
    }

    #[test]
    fn a_range_is_cut_into_contiguous_pieces_that_cover_it() {
        // 17,550,156..35,095,834 is the second half of a 1M-event month.
        let pieces = cut(&file(35_095_834, Some((17_550_156, 35_095_834))), 6_000_000);
        assert_eq!(
            ranges(&pieces),
            vec![
                (17_550_156, 23_398_716),
                (23_398_716, 29_247_276),
                (29_247_276, 35_095_834),
            ]
        );
        // A whole file (no range) is cut from its first byte to its last.
        let pieces = cut(&file(10, None), 4);
        assert_eq!(ranges(&pieces), vec![(0, 4), (4, 8), (8, 10)]);
    }

    #[test]
    fn a_range_no_larger_than_a_piece_is_left_whole() {
        let whole = file(7_500_000, None);
        let pieces = cut(&whole, MIN_PIECE_BYTES);
        assert_eq!(pieces.len(), 1);
        assert!(pieces[0].range.is_none());
        let ranged = file(9_000_000, Some((100, 4_000_000)));
        assert_eq!(
            ranges(&cut(&ranged, MIN_PIECE_BYTES)),
            vec![(100, 4_000_000)]
        );
    }

    /// The pieces of every file scan in `plan`, by partition.
    fn pieces(plan: &Arc<dyn ExecutionPlan>) -> Vec<usize> {
        let mut groups = Vec::new();
        plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<DataSourceExec>()
                && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
            {
                groups.extend(config.file_groups.iter().map(FileGroup::len));
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        groups
    }

    /// Runs `sql` over two files of row groups of 1,000 on two partitions,
    /// with the rule cutting pieces of at least `min_piece_bytes` when
    /// given; returns the pieces per partition and the first column of the
    /// answer.
    async fn run(sql: &str, min_piece_bytes: Option<u64>) -> (Vec<usize>, Vec<i64>) {
        run_over(sql, min_piece_bytes, 2, 1_000).await
    }

    /// [`run`] over `files` files of row groups of `group_rows`.
    async fn run_over(
        sql: &str,
        min_piece_bytes: Option<u64>,
        files: usize,
        group_rows: usize,
    ) -> (Vec<usize>, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        for n in 0..files {
            let name = format!("{n}.parquet");
            let from = n as i64 * ROWS;
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(from..from + ROWS))],
            )
            .unwrap();
            let props = WriterProperties::builder()
                .set_max_row_group_row_count(Some(group_rows))
                .set_dictionary_enabled(false)
                .build();
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
        let mut config = SessionConfig::new().with_target_partitions(2);
        // Two files of ~80 KB: DataFusion splits them by range only above this.
        config.options_mut().optimizer.repartition_file_min_size = 1;
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if let Some(min_piece_bytes) = min_piece_bytes {
            rules.push(Arc::new(ScanPieces { min_piece_bytes }));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        let url = ListingTableUrl::parse(format!("{}/", dir.path().display())).unwrap();
        let table = ListingTableConfig::new(url)
            .with_listing_options(
                ListingOptions::new(Arc::new(ParquetFormat::default()))
                    .with_file_extension(".parquet"),
            )
            .with_schema(schema);
        ctx.register_table("t", Arc::new(ListingTable::try_new(table).unwrap()))
            .unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let values = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        (pieces(&plan), values)
    }

    #[tokio::test]
    async fn every_row_is_read_once_from_the_pieces() {
        // 0, 7, …, 39,998: 5,715 values, whose sum is 7 × (5,714 × 5,715 / 2).
        let sql = "SELECT count(*), sum(v) FROM (SELECT v FROM t WHERE v % 7 = 0)";
        let (before, answer) = run(sql, None).await;
        assert_eq!(answer, vec![5_715]);
        assert_eq!(before.len(), 2);
        let (after, answer) = run(sql, Some(10_000)).await;
        assert_eq!(answer, vec![5_715]);
        assert_eq!(after.len(), 2, "the partitions stay as planned");
        assert!(
            after.iter().sum::<usize>() > before.iter().sum::<usize>() + 4,
            "pieces {after:?}, ranges {before:?}"
        );
        let (_, sum) = run(
            "SELECT sum(v) FROM (SELECT v FROM t WHERE v % 7 = 0)",
            Some(10_000),
        )
        .await;
        assert_eq!(sum, vec![7 * (5_714 * 5_715 / 2)]);
    }

    #[test]
    fn a_files_touching_ranges_are_joined_and_others_kept() {
        let other = PartitionedFile::new("heroku/year=2024/month=4/acme.parquet", 50);
        let files = [
            file(100, Some((0, 40))),
            other.clone(),
            file(100, Some((40, 70))),
            // Not touching what came before: kept apart.
            file(100, Some((80, 100))),
        ];
        let joined = joined(files.iter());
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[0].range(), (0, 70));
        assert_eq!(joined[1].object_meta.location, other.object_meta.location);
        assert!(joined[1].range.is_none());
        assert_eq!(joined[2].range(), (80, 100));
    }

    #[test]
    fn pieces_too_few_to_balance_get_more_partitions() {
        const MB: u64 = 1 << 20;
        // Three equal files on two: one core would read two, the other one.
        assert_eq!(partitions_for(&[7 * MB; 3], 2), 3);
        // Five: four partitions, twice the planned count at most.
        assert_eq!(partitions_for(&[7 * MB; 5], 2), 4);
        // Four, or sixteen, share out evenly as planned.
        assert_eq!(partitions_for(&[7 * MB; 4], 2), 2);
        assert_eq!(partitions_for(&[8 * MB; 16], 2), 2);
        // Six months and a small one of late events: within 15%.
        let mut months = vec![7 * MB; 6];
        months.push(MB / 10);
        assert_eq!(partitions_for(&months, 2), 2);
        // No more pieces than partitions: nothing to balance.
        assert_eq!(partitions_for(&[7 * MB, 30 * MB], 2), 2);
    }

    #[test]
    fn groups_hold_consecutive_pieces_as_equal_in_count_as_can_be() {
        let pieces: Vec<_> = (0..5).map(|i| file(10, Some((i, i + 1)))).collect();
        let groups = in_groups(pieces, 3);
        let starts: Vec<Vec<i64>> = groups
            .iter()
            .map(|g| g.iter().map(|p| p.range.as_ref().unwrap().start).collect())
            .collect();
        assert_eq!(starts, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[tokio::test]
    async fn three_single_row_group_files_are_read_on_three_partitions() {
        // 0, 7, …, 59,997: 8,572 values, whose sum is 7 × (8,571 × 8,572 / 2).
        let sql = "SELECT count(*), sum(v) FROM (SELECT v FROM t WHERE v % 7 = 0)";
        let (before, answer) = run_over(sql, None, 3, 20_000).await;
        assert_eq!(answer, vec![8_572]);
        assert_eq!(before.len(), 2);
        let (after, answer) = run_over(sql, Some(10_000_000), 3, 20_000).await;
        assert_eq!(answer, vec![8_572]);
        assert_eq!(after, vec![1, 1, 1]);
        let sql = "SELECT sum(v) FROM (SELECT v FROM t WHERE v % 7 = 0)";
        let (_, sum) = run_over(sql, Some(10_000_000), 3, 20_000).await;
        assert_eq!(sum, vec![7 * (8_571 * 8_572 / 2)]);
    }

    #[tokio::test]
    async fn an_ordered_or_limited_scan_keeps_its_ranges() {
        let (before, _) = run("SELECT v FROM t LIMIT 3", None).await;
        let (after, answer) = run("SELECT v FROM t LIMIT 3", Some(10_000)).await;
        assert_eq!(before, after);
        assert_eq!(answer.len(), 3);
    }

    /// The engine cuts pieces last, once every scan is planned.
    #[test]
    fn the_engine_cuts_pieces_after_every_other_rule() {
        let rules = crate::engine::physical_optimizer_rules(&[]);
        assert_eq!(rules.last().unwrap().name(), "scan_pieces");
    }
}
