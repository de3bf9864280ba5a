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
//! own ranges, so every row is still read once. Files whose footers the
//! session has read are cut at their row groups, so no piece is empty;
//! others are cut by bytes ([`cut`]).
//!
//! The scan then runs on a partition a piece, up to twice the planned
//! count ([`share::partitions_for`]): a partition waiting on a read leaves
//! its core to another, and pieces too few to share out evenly (three
//! single-row-group months on two cores) finish together. Every operator
//! above a scan takes its partition count from its input, and the rule
//! runs last, after every distribution was enforced; the scans it changes
//! have at least two partitions, so what needs one partition already
//! merges them.

mod bloom;
mod cut;
mod rows;
mod share;

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::repartition::RepartitionExec;

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
    /// [`rows::MIN_SPLIT_BYTES`], smaller in tests of small files.
    min_split_bytes: u64,
    /// The session's cache of Parquet footers, where the rule finds the
    /// row groups of the files a session has read before.
    footers: Arc<FileMetadataCache>,
}

impl ScanPieces {
    /// The rule, cutting at the row groups of the footers in `footers`.
    pub fn new(footers: Arc<FileMetadataCache>) -> Self {
        ScanPieces {
            min_piece_bytes: MIN_PIECE_BYTES,
            min_split_bytes: rows::MIN_SPLIT_BYTES,
            footers,
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
        let cores = config.execution.target_partitions;
        plan.transform_up(|node| {
            match self
                .in_pieces(&node)
                .or_else(|| self.under_repartition(&node, cores))
            {
                Some(replaced) => Ok(Transformed::yes(replaced)),
                None => Ok(Transformed::no(node)),
            }
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

impl ScanPieces {
    /// `node` with its files cut into pieces, when it is a file scan whose
    /// partitions take their files from one shared queue and that changes
    /// how it is read.
    fn in_pieces(&self, node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        let scan = node.downcast_ref::<DataSourceExec>()?;
        let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
        if config.file_groups.len() < 2 {
            return None;
        }
        let groups = self.shared_out(config, config.file_groups.len())?;
        Some(with_groups(config, groups))
    }

    /// `node` with its input read on up to `cores` partitions, when it
    /// repartitions the rows of a one-partition file scan (DataFusion's
    /// plan for a file too small to split by bytes, such as a 200k-event
    /// month of one row group). A repartition takes any number of input
    /// partitions, so nothing above it changes.
    fn under_repartition(
        &self,
        node: &Arc<dyn ExecutionPlan>,
        cores: usize,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let repartition = node.downcast_ref::<RepartitionExec>()?;
        if repartition.preserve_order() || cores < 2 {
            return None;
        }
        let scan = repartition.input().downcast_ref::<DataSourceExec>()?;
        let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
        // With one input partition a repartition keeps its input's order,
        // which several partitions would not.
        if config.file_groups.len() != 1 || !config.output_ordering.is_empty() {
            return None;
        }
        let groups = self.shared_out(config, cores)?;
        if groups.len() < 2 || groups.iter().any(FileGroup::is_empty) {
            return None;
        }
        let recompute = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
        Arc::clone(node)
            .replace_children(vec![with_groups(config, groups)], recompute)
            .ok()
    }

    /// The groups of pieces `config`'s files are read in when its scan
    /// runs on (about) `planned` partitions, or `None` when that changes
    /// nothing or the scan must keep its files where they are.
    fn shared_out(&self, config: &FileScanConfig, planned: usize) -> Option<Vec<FileGroup>> {
        // DataFusion shares a scan's files between its partitions only then
        // (`FileScanConfig::create_sibling_state`); a limit stops at the
        // first rows, where pieces buy nothing.
        if config.preserve_order || config.output_partitioning.is_some() || config.limit.is_some() {
            return None;
        }
        let total: u64 = config
            .file_groups
            .iter()
            .flat_map(FileGroup::iter)
            .map(cut::range_bytes)
            .sum();
        let piece = (total / (planned as u64 * PIECES_PER_PARTITION)).max(self.min_piece_bytes);
        let pieces: Vec<cut::Piece> =
            cut::joined(config.file_groups.iter().flat_map(FileGroup::iter))
                .iter()
                .flat_map(|file| cut::pieces_of(file, piece, self.footers.as_ref()))
                .collect();
        let pieces = self.within_row_groups(pieces, planned, config);
        let sizes: Vec<u64> = pieces.iter().map(|piece| piece.bytes).collect();
        let files = pieces.into_iter().map(|piece| piece.file).collect();
        let groups = share::in_groups(files, share::partitions_for(&sizes, planned));
        if share::same_layout(&groups, &config.file_groups) {
            return None;
        }
        Some(groups)
    }

    /// `pieces`, with each row group that reads alone cut into row ranges
    /// when the pieces that read something, or the row groups a lookup by
    /// value keeps after its bloom filters ([`bloom`]), are fewer than
    /// `planned` (see [`rows`]).
    fn within_row_groups(
        &self,
        pieces: Vec<cut::Piece>,
        planned: usize,
        config: &FileScanConfig,
    ) -> Vec<cut::Piece> {
        let working = pieces.iter().filter(|piece| piece.bytes > 0).count();
        if working == 0 {
            return pieces;
        }
        // Past the pieces the rule aims for, the row groups a bloom filter
        // passes by chance are enough to share out.
        let looked_up = (working <= planned * PIECES_PER_PARTITION as usize)
            .then(|| self.values_looked_up(&pieces, config))
            .flatten();
        let reading = looked_up.map_or(working, |values| working.min(values.max(1)));
        if reading >= planned {
            return pieces;
        }
        let parts = planned.div_ceil(reading);
        pieces
            .into_iter()
            .flat_map(|piece| {
                rows::split(&piece, parts, self.min_split_bytes, self.footers.as_ref())
                    .unwrap_or_else(|| vec![piece])
            })
            .collect()
    }

    /// See [`bloom::values_looked_up`], over the cached footers of the
    /// files of `pieces` that read something.
    fn values_looked_up(&self, pieces: &[cut::Piece], config: &FileScanConfig) -> Option<usize> {
        let mut footers: Vec<Arc<ParquetMetaData>> = Vec::new();
        for piece in pieces.iter().filter(|piece| piece.bytes > 0) {
            let footer = cut::cached_footer(self.footers.as_ref(), &piece.file)?;
            if !footers.iter().any(|seen| Arc::ptr_eq(seen, &footer)) {
                footers.push(footer);
            }
        }
        bloom::values_looked_up(config, &footers)
    }
}

/// The scan of `config` with its files in `groups`.
fn with_groups(config: &FileScanConfig, groups: Vec<FileGroup>) -> Arc<dyn ExecutionPlan> {
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups)
        .build();
    DataSourceExec::from_data_source(config)
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

    /// The pieces of every file scan in `plan`, by partition.
    fn pieces(plan: &Arc<dyn ExecutionPlan>) -> Vec<usize> {
        scan_groups(plan).iter().map(FileGroup::len).collect()
    }

    /// The file groups (partitions) of every file scan in `plan`.
    fn scan_groups(plan: &Arc<dyn ExecutionPlan>) -> Vec<FileGroup> {
        let mut groups = Vec::new();
        plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<DataSourceExec>()
                && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
            {
                groups.extend(config.file_groups.iter().cloned());
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
        let (_dir, ctx) = session(min_piece_bytes, files, group_rows);
        let (plan, values) = answer(&ctx, sql).await;
        (pieces(&plan), values)
    }

    /// A session of two partitions over table `t`: `files` files of row
    /// groups of `group_rows`, in the directory returned with it.
    fn session(
        min_piece_bytes: Option<u64>,
        files: usize,
        group_rows: usize,
    ) -> (tempfile::TempDir, SessionContext) {
        session_of(min_piece_bytes, files, group_rows, false)
    }

    /// [`session`], with a bloom filter on `v` in every row group when
    /// `bloom` is set.
    fn session_of(
        min_piece_bytes: Option<u64>,
        files: usize,
        group_rows: usize,
        bloom: bool,
    ) -> (tempfile::TempDir, SessionContext) {
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
                .set_data_page_row_count_limit(1_000)
                .set_write_batch_size(1_000)
                .set_dictionary_enabled(false)
                .set_bloom_filter_enabled(bloom)
                .build();
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
        let mut config = SessionConfig::new().with_target_partitions(2);
        // Two files of ~80 KB: DataFusion splits them by range only above this.
        config.options_mut().optimizer.repartition_file_min_size = 1;
        let runtime = Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default());
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if let Some(min_piece_bytes) = min_piece_bytes {
            rules.push(Arc::new(ScanPieces {
                min_piece_bytes,
                min_split_bytes: 1,
                footers: runtime.cache_manager.get_file_metadata_cache(),
            }));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
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
        (dir, ctx)
    }

    /// `sql`'s plan in `ctx`, and the first column of its answer.
    async fn answer(ctx: &SessionContext, sql: &str) -> (Arc<dyn ExecutionPlan>, Vec<i64>) {
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
        (plan, values)
    }

    /// Every piece of the scans in `plan`: its file's name and its range.
    fn piece_ranges(plan: &Arc<dyn ExecutionPlan>) -> Vec<(String, u64, u64)> {
        scan_groups(plan)
            .iter()
            .flat_map(FileGroup::iter)
            .map(|file| {
                let name = file.object_meta.location.filename().unwrap().to_string();
                let (start, end) = file.range();
                (name, start, end)
            })
            .collect()
    }

    /// The first byte of each row group of `file`, read from its footer.
    fn row_group_starts(file: &std::path::Path) -> Vec<u64> {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
        reader
            .metadata()
            .row_groups()
            .iter()
            .map(|group| {
                let column = group.column(0);
                let first = column
                    .dictionary_page_offset()
                    .unwrap_or_else(|| column.data_page_offset());
                first as u64
            })
            .collect()
    }

    #[tokio::test]
    async fn a_session_that_has_read_the_footers_cuts_at_row_groups() {
        // Pieces of at least a byte: the size is the scan's sixteenth.
        let (dir, ctx) = session(Some(1), 2, 1_000);
        let sql = "SELECT count(*), sum(v) FROM (SELECT v FROM t WHERE v % 7 = 0)";
        let (_, first) = answer(&ctx, sql).await;
        assert_eq!(first, vec![5_715]);
        // The first run put both footers in the session's cache.
        let (plan, again) = answer(&ctx, sql).await;
        assert_eq!(again, vec![5_715]);
        let ranges = piece_ranges(&plan);
        assert!(ranges.len() >= 10, "{ranges:?}");
        for (name, start, end) in &ranges {
            let starts = row_group_starts(&dir.path().join(name));
            assert_eq!(starts.len(), 20);
            assert!(
                *start == 0 || starts.contains(start),
                "{name} {start}..{end} begins inside a row group"
            );
            assert!(
                starts.iter().any(|s| (start..end).contains(&s)),
                "{name} {start}..{end} holds no row group's start"
            );
        }
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
        assert_eq!(after.len(), 4, "twice the planned partitions");
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

    /// How many of the scans' pieces in `plan` read a row range of a row
    /// group (carry an access plan).
    fn row_range_pieces(plan: &Arc<dyn ExecutionPlan>) -> usize {
        use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
        scan_groups(plan)
            .iter()
            .flat_map(FileGroup::iter)
            .filter(|file| file.extensions.get::<ParquetAccessPlan>().is_some())
            .count()
    }

    #[tokio::test]
    async fn a_lone_row_group_is_read_in_row_ranges_once_its_page_index_is_cached() {
        // One file of one row group: 20,000 rows in pages of 1,000. A bound
        // on `v` has page statistics, so the scan reads the page index.
        let (_dir, ctx) = session(Some(1), 1, 20_000);
        let sql = "SELECT count(*), sum(v) FROM (SELECT v FROM t WHERE v >= 7)";
        let (_, first) = answer(&ctx, sql).await;
        assert_eq!(first, vec![19_993]);
        let (plan, again) = answer(&ctx, sql).await;
        assert_eq!(again, vec![19_993]);
        assert_eq!(row_range_pieces(&plan), 2, "two halves of the row group");
        assert_eq!(pieces(&plan), vec![1, 1]);
        // 7 + 8 + … + 19,999 = 19,999 × 20,000 / 2 − (0 + … + 6).
        let (_, sum) = answer(&ctx, "SELECT sum(v) FROM (SELECT v FROM t WHERE v >= 7)").await;
        assert_eq!(sum, vec![199_990_000 - 21]);
    }

    #[tokio::test]
    async fn a_lookup_by_a_bloom_filtered_value_cuts_every_row_group() {
        // Three files of one row group each: three working pieces for two
        // partitions, but the bloom filters leave one row group of them.
        let sql = "SELECT count(*), sum(v) FROM (SELECT v FROM t WHERE v = 25007)";
        for (bloom, cut) in [(false, 0), (true, 6)] {
            let (_dir, ctx) = session_of(Some(1), 3, 20_000, bloom);
            let (_, first) = answer(&ctx, sql).await;
            assert_eq!(first, vec![1]);
            let (plan, again) = answer(&ctx, sql).await;
            assert_eq!(again, vec![1]);
            assert_eq!(row_range_pieces(&plan), cut, "bloom filters: {bloom}");
            let (_, sum) = answer(&ctx, "SELECT sum(v) FROM t WHERE v IN (25007, 59999)").await;
            assert_eq!(sum, vec![25_007 + 59_999]);
        }
    }

    #[tokio::test]
    async fn a_one_partition_scan_under_a_repartition_is_read_on_two() {
        let sql = "SELECT v * 2 AS w FROM t WHERE v >= 19990 ORDER BY w";
        let expected: Vec<i64> = (19_990..20_000).map(|v| v * 2).collect();
        for (rule, scan) in [(None, vec![1]), (Some(1), vec![1, 1])] {
            let (_dir, ctx) = session(rule, 1, 20_000);
            // A file this small is not split by bytes: one partition, whose
            // rows DataFusion repartitions for the projection and the sort.
            ctx.sql("SET datafusion.optimizer.repartition_file_min_size = 1000000000")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let (_, first) = answer(&ctx, sql).await;
            assert_eq!(first, expected);
            let (plan, again) = answer(&ctx, sql).await;
            assert_eq!(again, expected);
            assert_eq!(pieces(&plan), scan, "with the rule: {rule:?}");
            assert_eq!(row_range_pieces(&plan), 2 * usize::from(rule.is_some()));
        }
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
        let rules = crate::engine::default_rules();
        assert_eq!(rules.last().unwrap().name(), "scan_pieces");
    }
}
