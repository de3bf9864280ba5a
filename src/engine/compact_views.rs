//! Text a sort holds is copied out of the Parquet reader's pages first.
//!
//! Tables are read as `Utf8View` (see `read_schema`): a value is a view into
//! the reader's decompressed page, so a batch of the few rows a filter kept
//! still holds every page those rows came from. A sort keeps all its input
//! batches until the last one arrives, and so kept the pages of every row
//! group it read: "everything from one IP" over 12 months of 1M events
//! returned ~12k rows and held ~560 MB of `id` pages (peak RSS 727 MB,
//! against 169 MB for the same rows unsorted), and the pool counted it all,
//! so a larger lake spilled or ran out of memory. DataFusion's sort compacts
//! views only when it spills; [`CompactViewsExec`] does it as the batches
//! enter the sort, copying only the rows kept.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// Buffers a view column may hold beyond the bytes its views use before it
/// is compacted: below this, copying costs more than it frees.
const SLACK_BYTES: usize = 64 * 1024;

/// The physical optimizer rule: puts a [`CompactViewsExec`] under every
/// full sort (not a top-k, which keeps only its k rows) whose input has
/// view columns.
#[derive(Debug, Default)]
pub struct CompactViews;

impl PhysicalOptimizerRule for CompactViews {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let input = sort.input();
            if sort.fetch().is_some()
                || input.downcast_ref::<CompactViewsExec>().is_some()
                || !has_views(input)
            {
                return Ok(Transformed::no(node));
            }
            let compacted: Arc<dyn ExecutionPlan> =
                Arc::new(CompactViewsExec::new(Arc::clone(input)));
            // The sort's input keeps its partitioning and order.
            let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
            Ok(Transformed::yes(
                Arc::clone(&node).replace_children(vec![compacted], keep)?,
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        "compact_views"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn has_views(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
}

/// Passes its input's batches on with each view column compacted when its
/// buffers hold more than [`SLACK_BYTES`] beyond twice what its views use.
#[derive(Debug)]
pub struct CompactViewsExec {
    input: Arc<dyn ExecutionPlan>,
}

impl CompactViewsExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for CompactViewsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CompactViewsExec")
    }
}

impl ExecutionPlan for CompactViewsExec {
    fn name(&self) -> &str {
        "CompactViewsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            input.map(|batch| batch.and_then(|b| Ok(compact(b)?))),
        )))
    }
}

/// `batch` with its wasteful view columns compacted (the same values).
pub fn compact(batch: RecordBatch) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            let compacted: Option<ArrayRef> = match column.data_type() {
                DataType::Utf8View => {
                    let views = column.as_string_view();
                    wasteful(views.data_buffers(), views.total_buffer_bytes_used())
                        .then(|| Arc::new(views.gc()) as ArrayRef)
                }
                DataType::BinaryView => {
                    let views = column.as_binary_view();
                    wasteful(views.data_buffers(), views.total_buffer_bytes_used())
                        .then(|| Arc::new(views.gc()) as ArrayRef)
                }
                _ => None,
            };
            changed |= compacted.is_some();
            compacted.unwrap_or_else(|| Arc::clone(column))
        })
        .collect();
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(batch.schema(), columns)
}

fn wasteful(buffers: &[datafusion::arrow::buffer::Buffer], used: usize) -> bool {
    let held: usize = buffers.iter().map(|b| b.len()).sum();
    held > used.saturating_mul(2).saturating_add(SLACK_BYTES)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringViewArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::empty::EmptyExec;

    use super::*;

    fn sort_over(data_type: DataType, fetch: Option<usize>) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new("s", data_type, true)]));
        let ordering = LexOrdering::new(vec![PhysicalSortExpr::new_default(Arc::new(
            Column::new("s", 0),
        ))])
        .unwrap();
        Arc::new(SortExec::new(ordering, Arc::new(EmptyExec::new(schema))).with_fetch(fetch))
    }

    fn child_name(plan: &Arc<dyn ExecutionPlan>) -> String {
        plan.children()[0].name().to_string()
    }

    #[test]
    fn full_sorts_of_views_get_their_input_compacted_once() {
        let rule = CompactViews;
        let config = ConfigOptions::default();
        let plan = rule
            .optimize(sort_over(DataType::Utf8View, None), &config)
            .unwrap();
        assert_eq!(child_name(&plan), "CompactViewsExec");
        assert_eq!(plan.children()[0].children()[0].name(), "EmptyExec");
        let again = rule.optimize(plan, &config).unwrap();
        assert_eq!(child_name(again.children()[0]), "EmptyExec", "not twice");

        // A top-k keeps k rows; plain text holds no pages.
        for (data_type, fetch) in [(DataType::Utf8View, Some(10)), (DataType::Utf8, None)] {
            let plan = rule.optimize(sort_over(data_type, fetch), &config).unwrap();
            assert_eq!(child_name(&plan), "EmptyExec");
        }
    }

    #[test]
    fn a_view_column_holding_mostly_other_rows_is_copied_out() {
        // 2,000 values of 100 bytes, as in one page; a filter keeps 3.
        let page: Vec<String> = (0..2000).map(|i| format!("{i:0>100}")).collect();
        let all = StringViewArray::from_iter_values(page.iter());
        let kept = datafusion::arrow::compute::take(
            &all,
            &datafusion::arrow::array::UInt32Array::from(vec![5, 700, 1999]),
            None,
        )
        .unwrap();
        let held = |a: &ArrayRef| -> usize {
            a.as_string_view()
                .data_buffers()
                .iter()
                .map(|b| b.len())
                .sum()
        };
        assert_eq!(held(&kept), 200_000, "the views still hold the page");
        let batch = RecordBatch::try_from_iter([("s", Arc::clone(&kept))]).unwrap();
        let out = compact(batch).unwrap();
        assert_eq!(held(out.column(0)), 300);
        assert_eq!(out.column(0).as_ref(), kept.as_ref(), "the same values");

        // Views that use most of what they hold are left as they are.
        let batch = RecordBatch::try_from_iter([("s", Arc::new(all) as ArrayRef)]).unwrap();
        let out = compact(batch.clone()).unwrap();
        assert!(Arc::ptr_eq(out.column(0), batch.column(0)));
    }
}
