//! The row groups and pages of a file that can hold rows passing the
//! filters, by the rules of DataFusion's own Parquet scan: the file's byte
//! range, row-group statistics and the page index. The files are sorted by
//! app and type, so a count filtered on them (an app's config changes in a
//! month) decodes the codes of the few pages that hold those rows instead of
//! the month's whole columns.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    PagePruningAccessPlanFilter, ParquetAccessPlan, ParquetFileMetrics, RowGroupAccessPlanFilter,
};
use datafusion::error::Result;
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;

use super::filter::{CodeFilter, with_columns_at};

/// What to read of one file.
pub(super) struct Access {
    pub(super) row_groups: Vec<usize>,
    /// The rows to read within them (None: all of their rows).
    pub(super) selection: Option<RowSelection>,
}

/// The row groups of `file`'s byte range that statistics do not rule out,
/// and the rows of the pages whose index does not rule them out either.
/// `file_schema` is the file's own Arrow schema (its columns in the file's
/// order, which is how statistics are found for a column).
pub(super) fn access(
    filters: &[CodeFilter],
    file: &PartitionedFile,
    file_schema: &SchemaRef,
    parquet: &ParquetMetaData,
    metrics: &ParquetFileMetrics,
) -> Result<Access> {
    let groups = parquet.row_groups();
    let mut plan = RowGroupAccessPlanFilter::new(ParquetAccessPlan::new_all(groups.len()));
    if let Some(range) = &file.range {
        plan.prune_by_range(groups, range);
    }
    let schema = as_filtered(file_schema, filters);
    let parquet_schema = parquet.file_metadata().schema_descr();
    let mut conjuncts = Vec::with_capacity(filters.len());
    for filter in filters {
        // A conjunct that cannot be put on this file's columns, or whose
        // pruning predicate cannot be built, prunes nothing: the rows are
        // read and the filter answers for them.
        let Ok(conjunct) = with_columns_at(&filter.conjunct, |name| Ok(schema.index_of(name)?))
        else {
            continue;
        };
        let predicate = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&schema))
            .build(Arc::clone(&conjunct));
        if let Some(predicate) = predicate {
            plan.prune_by_statistics(&schema, parquet_schema, groups, &predicate, metrics);
        }
        conjuncts.push(conjunct);
    }
    let mut plan = plan.build();
    for conjunct in &conjuncts {
        plan = PagePruningAccessPlanFilter::new(conjunct, Arc::clone(&schema))
            .prune_plan_with_page_index(plan, &schema, parquet_schema, parquet, metrics);
    }
    Ok(Access {
        row_groups: plan.row_group_indexes(),
        selection: plan.into_overall_row_selection(groups)?,
    })
}

/// `file_schema` with each filtered column of the type its filter was
/// planned for (the table's `Utf8View`, where the file says `Utf8`), so
/// statistics and literals compare as in DataFusion's scan.
fn as_filtered(file_schema: &SchemaRef, filters: &[CodeFilter]) -> SchemaRef {
    let fields: Vec<Arc<Field>> = file_schema
        .fields()
        .iter()
        .map(|f| match filters.iter().find(|c| c.column == *f.name()) {
            Some(c) if c.data_type != *f.data_type() => {
                Arc::new(f.as_ref().clone().with_data_type(c.data_type.clone()))
            }
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelector};
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;

    use super::*;

    /// 40 rows sorted by type: addon x10, app x10, config_change x6,
    /// release x14; row groups of 20 rows, pages of 5.
    fn write_sorted(path: &std::path::Path) {
        let types: Vec<&str> = [
            ("addon", 10),
            ("app", 10),
            ("config_change", 6),
            ("release", 14),
        ]
        .iter()
        .flat_map(|(t, n)| std::iter::repeat_n(*t, *n))
        .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("type", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(types))]).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(20))
            .set_data_page_row_count_limit(5)
            .set_write_batch_size(5)
            .set_statistics_enabled(EnabledStatistics::Page)
            .build();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn a_filter_on_the_sort_column_reads_its_row_group_and_pages_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write_sorted(&path);
        // `type = 'config_change'`, planned over the table's Utf8View.
        let literal = ScalarValue::Utf8View(Some("config_change".into()));
        let conjunct: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("type", 0)),
            Operator::Eq,
            Arc::new(Literal::new(literal)),
        ));
        let filter = CodeFilter {
            column: "type".into(),
            expr: Arc::clone(&conjunct),
            conjunct,
            data_type: DataType::Utf8View,
        };
        let options = datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Required);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            std::fs::File::open(&path).unwrap(),
            options,
        )
        .unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let file = PartitionedFile::new("f.parquet", size);
        let metrics = ParquetFileMetrics::new(0, "f.parquet", &ExecutionPlanMetricsSet::new());
        let access = access(
            &[filter],
            &file,
            &Arc::clone(builder.schema()),
            builder.metadata(),
            &metrics,
        )
        .unwrap();
        // Row group 0 (addon, app) is ruled out by its statistics; of row
        // group 1, the pages of rows 20-24 and 25-29 hold config_change,
        // rows 30-39 only release.
        assert_eq!(access.row_groups, vec![1]);
        let selection = access.selection.unwrap();
        assert_eq!(
            Vec::<RowSelector>::from(selection.clone()),
            vec![RowSelector::select(10), RowSelector::skip(10)]
        );
        // The reader reads those 10 rows, and all 6 config changes are
        // among them.
        let types: Vec<String> = builder
            .with_row_groups(access.row_groups)
            .with_row_selection(selection)
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let a = b.column(0).as_string::<i32>();
                a.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(types.len(), 10);
        assert_eq!(types.iter().filter(|t| *t == "config_change").count(), 6);
    }
}
