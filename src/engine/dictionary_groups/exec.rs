//! The plan node that counts on codes, and the reading of its files.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileMetrics, ParquetFileReaderFactory,
};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use super::Counting;
use super::filter::{CodeFilterState, select};
use super::prune;
use super::table::GroupTable;
#[cfg(test)]
use super::{Count, GroupSource};

/// Counts by group of dictionary codes, over the files of a Parquet scan,
/// in the schema of the partial aggregation it stands for.
#[derive(Debug)]
pub struct DictionaryGroupsExec {
    store: ObjectStoreUrl,
    /// The scan's reader factory (None: the session's default one).
    readers: Option<Arc<dyn ParquetFileReaderFactory>>,
    /// The scan's files, one group per output partition.
    file_groups: Vec<Vec<PartitionedFile>>,
    counting: Counting,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DictionaryGroupsExec {
    pub(super) fn new(
        store: ObjectStoreUrl,
        readers: Option<Arc<dyn ParquetFileReaderFactory>>,
        file_groups: Vec<Vec<PartitionedFile>>,
        counting: Counting,
        schema: SchemaRef,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(file_groups.len()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        DictionaryGroupsExec {
            store,
            readers,
            file_groups,
            counting,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The files it reads (what `query --evidence` lists).
    pub fn files(&self) -> impl Iterator<Item = &object_store::path::Path> {
        self.file_groups
            .iter()
            .flatten()
            .map(|f| &f.object_meta.location)
    }
}

impl DisplayAs for DictionaryGroupsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DictionaryGroupsExec: codes=[{}]",
            self.counting.group_codes().join(", ")
        )?;
        if !self.counting.filters.is_empty() {
            let columns: Vec<&str> = self
                .counting
                .filters
                .iter()
                .map(|f| f.column.as_str())
                .collect();
            write!(f, ", filter=[{}]", columns.join(", "))?;
        }
        write!(f, ", files={}", self.files().count())
    }
}

impl ExecutionPlan for DictionaryGroupsExec {
    fn name(&self) -> &str {
        "DictionaryGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let runtime = context.runtime_env();
        let readers = match &self.readers {
            Some(readers) => Arc::clone(readers),
            None => Arc::new(CachedParquetFileReaderFactory::new(
                runtime.object_store(&self.store)?,
                runtime.cache_manager.get_file_metadata_cache(),
            )),
        };
        let reservation = MemoryConsumer::new(format!("DictionaryGroupsExec[{partition}]"))
            .register(context.memory_pool());
        let job = Job {
            partition,
            readers,
            files: self.file_groups.get(partition).cloned().unwrap_or_default(),
            counting: self.counting.clone(),
            schema: Arc::clone(&self.schema),
            batch_size: context.session_config().batch_size(),
            metrics: self.metrics.clone(),
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move { job.run(reservation, tx).await });
        Ok(builder.build())
    }
}

/// One output partition's work.
struct Job {
    partition: usize,
    readers: Arc<dyn ParquetFileReaderFactory>,
    files: Vec<PartitionedFile>,
    counting: Counting,
    schema: SchemaRef,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
}

type Sender = tokio::sync::mpsc::Sender<Result<RecordBatch>>;

impl Job {
    async fn run(self, reservation: MemoryReservation, tx: Sender) -> Result<()> {
        let Counting {
            groups,
            filters,
            counts,
        } = &self.counting;
        let mut table = GroupTable::new(groups, counts.len());
        let mut filters: Vec<CodeFilterState> =
            filters.iter().cloned().map(CodeFilterState::new).collect();
        for file in &self.files {
            let mut batches = self.open(file).await?;
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                let selected = select(&batch, &mut filters)?;
                table.add(
                    &batch,
                    groups,
                    &file.partition_values,
                    selected.as_deref(),
                    counts,
                )?;
                if reservation.try_resize(table.memory_size()).is_err() {
                    // The pool is full: hand on what was counted so far.
                    let emitted = table.emit(&self.schema, groups)?;
                    table = GroupTable::new(groups, counts.len());
                    reservation.resize(table.memory_size());
                    if tx.send(Ok(emitted)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        if table.len() != 0 {
            let _ = tx.send(table.emit(&self.schema, groups)).await;
        }
        Ok(())
    }

    /// The group columns of `file` (the row groups of its byte range), with
    /// text read as dictionaries.
    async fn open(
        &self,
        file: &PartitionedFile,
    ) -> Result<impl futures::Stream<Item = Result<RecordBatch>> + use<>> {
        let mut reader: Box<dyn AsyncFileReader> =
            self.readers
                .create_reader(self.partition, file.clone(), None, &self.metrics)?;
        // With a filter, the page index too: it narrows a filter on the sort
        // columns to their pages. Without one every row is read, and a
        // one-shot query would read the index for nothing.
        let policy = if self.counting.filters.is_empty() {
            PageIndexPolicy::Skip
        } else {
            PageIndexPolicy::Optional
        };
        let options = ArrowReaderOptions::new().with_page_index_policy(policy);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, options.clone()).await?;
        let file_schema = Arc::clone(metadata.schema());
        let wanted = self.counting.columns_to_read();
        let fields: Vec<Arc<Field>> = metadata
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let text = matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                );
                if wanted.contains(&f.name().as_str()) && text {
                    Arc::new(f.as_ref().clone().with_data_type(DataType::Dictionary(
                        Box::new(DataType::Int32),
                        Box::new(DataType::Utf8),
                    )))
                } else {
                    Arc::clone(f)
                }
            })
            .collect();
        let hinted = Arc::new(Schema::new_with_metadata(
            fields,
            metadata.schema().metadata().clone(),
        ));
        let metadata = ArrowReaderMetadata::try_new(
            Arc::clone(metadata.metadata()),
            options.with_schema(hinted),
        )?;
        let parquet = metadata.metadata();
        for name in &wanted {
            if metadata.schema().index_of(name).is_err() {
                return Err(DataFusionError::Execution(format!(
                    "{}: no column {name}",
                    file.object_meta.location
                )));
            }
        }
        let mask = ProjectionMask::columns(parquet.file_metadata().schema_descr(), wanted);
        let file_metrics = ParquetFileMetrics::new(
            self.partition,
            file.object_meta.location.as_ref(),
            &self.metrics,
        );
        let access = prune::access(
            &self.counting.filters,
            file,
            &file_schema,
            parquet,
            &file_metrics,
        )?;
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
            .with_projection(mask)
            .with_row_groups(access.row_groups)
            .with_batch_size(self.batch_size);
        if let Some(selection) = access.selection {
            builder = builder.with_row_selection(selection);
        }
        let stream = builder.build()?;
        Ok(stream.map(|b| b.map_err(DataFusionError::from)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use object_store::ObjectStore;
    use object_store::local::LocalFileSystem;

    use super::*;
    use crate::engine::dictionary_groups::table::LOCAL_GROUPS;

    /// 23 rows of (type, action), some null, written in row groups of 7
    /// rows (each with a dictionary of its own) and read 4 rows a batch.
    fn rows() -> Vec<(Option<String>, Option<String>)> {
        let types = [Some("app"), Some("addon"), None, Some("config_change")];
        let actions = [
            Some("create"),
            Some("set"),
            Some("destroy"),
            None,
            Some("set"),
        ];
        (0..23)
            .map(|i| {
                (
                    types[i * 7 % 4].map(str::to_string),
                    actions[i * 3 % 5].map(str::to_string),
                )
            })
            .collect()
    }

    /// The rows' groups and counts, counted one by one.
    fn expected(
        rows: &[(Option<String>, Option<String>)],
    ) -> BTreeMap<(Option<String>, Option<String>), (i64, i64)> {
        let mut expected = BTreeMap::new();
        for (t, a) in rows {
            let entry = expected.entry((t.clone(), a.clone())).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += i64::from(a.is_some());
        }
        expected
    }

    fn write_file(
        dir: &std::path::Path,
        rows: &[(Option<String>, Option<String>)],
    ) -> PartitionedFile {
        let schema = Arc::new(Schema::new(vec![
            Field::new("type", DataType::Utf8, true),
            Field::new("action", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.as_deref()))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.as_deref()))),
            ],
        )
        .unwrap();
        let path = dir.join("f.parquet");
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(if rows.len() > 100 { 2000 } else { 7 }))
            .build();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props))
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        PartitionedFile::new(
            object_store::path::Path::from_absolute_path(&path)
                .unwrap()
                .to_string(),
            size,
        )
    }

    /// Runs a job over `file` with `pool`; returns its batches' groups
    /// summed: (type, action) -> (rows, non-null actions), and how many
    /// batches it emitted. Batches of 4 rows.
    async fn count(
        file: PartitionedFile,
        pool: Arc<dyn MemoryPool>,
    ) -> (
        BTreeMap<(Option<String>, Option<String>), (i64, i64)>,
        usize,
    ) {
        count_in_batches(file, pool, 4).await
    }

    async fn count_in_batches(
        file: PartitionedFile,
        pool: Arc<dyn MemoryPool>,
        batch_size: usize,
    ) -> (
        BTreeMap<(Option<String>, Option<String>), (i64, i64)>,
        usize,
    ) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("type", DataType::Utf8View, true),
            Field::new("action", DataType::Utf8View, true),
            Field::new("rows", DataType::Int64, true),
            Field::new("actions", DataType::Int64, true),
        ]));
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let runtime = datafusion::execution::runtime_env::RuntimeEnv::default();
        let job = Job {
            partition: 0,
            readers: Arc::new(CachedParquetFileReaderFactory::new(
                store,
                runtime.cache_manager.get_file_metadata_cache(),
            )),
            files: vec![file],
            counting: Counting {
                groups: vec![
                    GroupSource::Dictionary("type".into()),
                    GroupSource::Dictionary("action".into()),
                ],
                filters: Vec::new(),
                counts: vec![Count::Rows, Count::NonNull(1)],
            },
            schema: schema.clone(),
            batch_size,
            metrics: ExecutionPlanMetricsSet::new(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        job.run(MemoryConsumer::new("test").register(&pool), tx)
            .await
            .unwrap();
        let mut groups = BTreeMap::new();
        let mut batches = 0;
        while let Ok(batch) = rx.try_recv() {
            let batch = batch.unwrap();
            batches += 1;
            let text = |c: usize, r: usize| {
                let a = batch.column(c).as_string_view();
                a.is_valid(r).then(|| a.value(r).to_string())
            };
            for r in 0..batch.num_rows() {
                let n = |c: usize| {
                    batch
                        .column(c)
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(r)
                };
                let entry = groups.entry((text(0, r), text(1, r))).or_insert((0, 0));
                assert!(n(2) > 0, "a group no row reached");
                entry.0 += n(2);
                entry.1 += n(3);
            }
        }
        (groups, batches)
    }

    #[tokio::test]
    async fn counts_agree_with_the_rows_whatever_the_memory() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        let file = write_file(dir.path(), &rows);
        let big = Arc::new(GreedyMemoryPool::new(1 << 20));
        let (groups, batches) = count(file.clone(), big).await;
        assert_eq!(groups, expected(&rows));
        assert_eq!(batches, 1);
        // A pool too small for any group: what was counted is handed on
        // after every batch (row groups of 7 rows read 4 at a time: 4, 3,
        // 4, 3, 4, 3 and 2 rows), each with only the groups its rows
        // reached, although each maps a row group's whole dictionary.
        let (groups, batches) = count(file, Arc::new(GreedyMemoryPool::new(1))).await;
        assert_eq!(groups, expected(&rows));
        assert_eq!(batches, 7);
    }

    /// Dictionaries of 600 and 601 values: more combinations of codes than
    /// the table indexed by them holds, so rows are grouped value by value.
    #[tokio::test]
    async fn many_combinations_are_grouped_by_value() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<_> = (0..1300)
            .map(|i| {
                let a = (i % 600 != 7).then(|| format!("t{}", i % 600));
                (a, Some(format!("a{}", i % 601)))
            })
            .collect();
        let file = write_file(dir.path(), &rows);
        let pool = Arc::new(GreedyMemoryPool::new(1 << 24));
        let (groups, _) = count(file, pool).await;
        // 600 x 601 value combinations do not fit the dense table.
        const { assert!(600 * 601 > LOCAL_GROUPS) };
        assert_eq!(groups.len(), 1300);
        assert_eq!(groups, expected(&rows));
    }

    /// Batches of more rows than combinations of codes: rows are counted by
    /// combination first, each combination given its group once.
    #[tokio::test]
    async fn batches_of_many_rows_are_counted_by_combination() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        let rows: Vec<_> = (0..40).flat_map(|_| rows.clone()).collect();
        let file = write_file(dir.path(), &rows);
        let pool = Arc::new(GreedyMemoryPool::new(1 << 20));
        let (groups, batches) = count_in_batches(file, pool, 500).await;
        // 920 rows in one row group, read in batches of 500: (3 types and
        // null) x (3 actions and null) = 16 combinations of codes.
        assert_eq!(batches, 1);
        assert_eq!(groups, expected(&rows));
        // Rows 1 and 21 of the 23 are (config_change, null), 40 times.
        assert_eq!(groups[&(Some("config_change".into()), None)], (80, 0));
    }
}
