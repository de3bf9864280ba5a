//! A filtered scan opens each data file with its page index.
//!
//! DataFusion loads a file's page index (its column and offset indexes) only
//! when a filter names a column with page statistics to prune by. Without
//! the offset index the Parquet reader does not know where a column's pages
//! start, so it fetches every projected column chunk whole, and then passes
//! over the pages holding no kept row by their headers: everything from one
//! IP over 12 × 1M events (a filter on `ip_address`, which has no page
//! statistics since its values do not follow the sort) fetched 302 MB for
//! ~12k rows. Every lake file has an offset index on every column (LAKE.md);
//! [`PageIndexReaders`] asks for it with the footer, and the reader then
//! fetches only the pages holding rows the filters kept: 139 MB for that
//! question. On a local disk the difference is a copy from the page cache;
//! on an object store it is bytes over the network. The index is kept in
//! DataFusion's metadata cache with the footer, so a shell session reads it
//! once per file.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;

/// The physical optimizer rule: gives every filtered Parquet scan
/// [`PageIndexReaders`] around the reader factory it has. Runs after
/// DataFusion pushes filters into the scans, and before the rules that
/// replace scans (footer counts, dictionary groups), which take the scan's
/// factory with them.
#[derive(Debug, Default)]
pub struct LoadPageIndex;

impl PhysicalOptimizerRule for LoadPageIndex {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(replaced) = with_page_index_readers(&node) else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(replaced))
        })
        .data()
    }

    fn name(&self) -> &str {
        "load_page_index"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with [`PageIndexReaders`] around its reader factory, when it is a
/// Parquet scan with a filter and a reader factory (a listing table's always
/// has one). Wrapping twice asks for the page index twice, which changes
/// nothing.
fn with_page_index_readers(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    let source = config.file_source().downcast_ref::<ParquetSource>()?;
    // Without a filter every row is read and no page is skipped: the index
    // would only cost its read (13 files' worth added 6-10 ms to a one-shot
    // whole-lake count on 12 x 1M).
    source.filter()?;
    let inner = source.parquet_file_reader_factory()?;
    let readers = PageIndexReaders {
        inner: Arc::clone(inner),
    };
    let source = source
        .clone()
        .with_parquet_file_reader_factory(Arc::new(readers));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// A reader factory whose readers load the page index with the footer;
/// everything else is the inner factory's (DataFusion's cached readers).
pub struct PageIndexReaders {
    inner: Arc<dyn ParquetFileReaderFactory>,
}

impl fmt::Debug for PageIndexReaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageIndexReaders")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ParquetFileReaderFactory for PageIndexReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(WithPageIndex { inner }))
    }
}

/// One file's reader: its metadata comes with the page index whatever the
/// caller asked for.
struct WithPageIndex {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for WithPageIndex {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        // `Optional`: a file written without a page index still opens.
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.inner.get_metadata(Some(&options)).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use datafusion::execution::SessionStateBuilder;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    const ROWS: usize = 20_000;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Utf8, false),
        ]))
    }

    /// A file whose filter column `k` has no page statistics (as the lake's
    /// scattered columns) and whose `v` is ~800 pages of 25 values; returns
    /// the bytes of `v`.
    fn write_file(path: &std::path::Path) -> usize {
        let schema = schema();
        let k = StringArray::from_iter_values((0..ROWS).map(|i| format!("k{}", i % 1000)));
        let v = StringArray::from_iter_values((0..ROWS).map(|i| format!("{i:036}")));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(v)]).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_dictionary_enabled(false)
            .set_data_page_size_limit(1024)
            .build();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props))
                .unwrap();
        writer.write(&batch).unwrap();
        let meta = writer.close().unwrap();
        meta.row_group(0).column(1).compressed_size() as usize
    }

    /// Bytes the scan fetched and the rows it returned.
    async fn scan(path: &std::path::Path, with_rule: bool) -> (usize, usize) {
        let mut config = SessionConfig::new();
        // As the engine: no statistics gathered at registration, which
        // would cache each footer with its page index.
        config.options_mut().execution.collect_statistics = false;
        config.options_mut().execution.parquet.pushdown_filters = true;
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if with_rule {
            let at = rules
                .iter()
                .position(|r| r.name() == "CombinePartialFinalAggregate")
                .unwrap();
            rules.insert(at, Arc::new(LoadPageIndex));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        // With its schema given, as the engine registers tables: inferring
        // it would read (and cache) each footer with its page index.
        let url = ListingTableUrl::parse(path.to_str().unwrap()).unwrap();
        let config = ListingTableConfig::new(url)
            .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())))
            .with_schema(schema());
        let table = ListingTable::try_new(config).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx
            .sql("SELECT v FROM t WHERE k = 'k7'")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let rows: usize = collect(Arc::clone(&plan), ctx.task_ctx())
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        let mut bytes = 0;
        plan.apply(|node| {
            if node.downcast_ref::<DataSourceExec>().is_some() {
                let metrics = node.metrics().unwrap();
                bytes += metrics.sum_by_name("bytes_scanned").unwrap().as_usize();
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
        .unwrap();
        (bytes, rows)
    }

    /// The engine's rules run this one once filters are in the scans, and
    /// before the rules that take a scan's reader factory with them.
    #[test]
    fn the_engine_loads_page_indexes_between_filter_pushdown_and_scan_rewrites() {
        let rules = crate::engine::default_rules();
        let at = |name: &str| rules.iter().position(|r| r.name() == name).unwrap();
        let this = at("load_page_index");
        assert!(at("FilterPushdown") < this);
        assert!(this < at("footer_counts"));
        assert!(this < at("dictionary_groups"));
    }

    #[tokio::test]
    async fn a_filter_without_page_statistics_skips_pages_holding_no_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let v_bytes = write_file(&path);

        // DataFusion alone fetches all of `v` to return 20 of its rows.
        let (without, rows) = scan(&path, false).await;
        assert_eq!(rows, ROWS / 1000);
        assert!(
            without > v_bytes,
            "{without} bytes scanned, `v` is {v_bytes}"
        );

        // With the offset index, only the 20 pages holding a match (and all
        // of `k`, which the filter reads).
        let (with, rows) = scan(&path, true).await;
        assert_eq!(rows, ROWS / 1000);
        assert!(
            with + v_bytes * 9 / 10 < without,
            "{with} bytes scanned with the page index, {without} without"
        );
    }
}
