//! What the engine's count rules ([`super::footer_counts`],
//! [`super::dictionary_groups`]) look for in a physical plan: a partial
//! aggregation of counts straight over a Parquet scan, which they answer
//! without DataFusion's scan and hash aggregation.

use std::sync::Arc;

use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

/// A partial aggregation whose aggregates are all counts (not distinct, not
/// ordered, not filtered), with one grouping and no limit, over a Parquet
/// scan with no limit that reads plain columns.
pub(super) struct CountsOverScan<'a> {
    pub(super) aggregate: &'a AggregateExec,
    pub(super) scan: &'a DataSourceExec,
    pub(super) config: &'a FileScanConfig,
    pub(super) source: &'a ParquetSource,
    /// The scan's column of each of the aggregation's input columns, when
    /// projections stand between them (None: the same columns).
    columns: Option<Vec<usize>>,
}

impl<'a> CountsOverScan<'a> {
    /// `node` as such an aggregation. Between it and the scan may stand
    /// round-robin repartitions (a scan of one file is spread over the
    /// cores, which has nothing to spread here) and projections of plain
    /// columns (a filtered scan reads the filter's columns until the
    /// projection is pushed into it).
    pub(super) fn find(node: &'a Arc<dyn ExecutionPlan>) -> Option<Self> {
        let aggregate = node.downcast_ref::<AggregateExec>()?;
        if *aggregate.mode() != AggregateMode::Partial
            || !aggregate.group_expr().is_single()
            || aggregate.filter_expr().iter().any(Option::is_some)
            || aggregate.limit_options().is_some()
            || !aggregate.aggr_expr().iter().all(|a| {
                a.fun().name() == "count"
                    && !a.is_distinct()
                    && a.order_bys().is_empty()
                    && a.expressions().len() == 1
            })
        {
            return None;
        }
        let mut input = aggregate.input();
        let mut columns: Option<Vec<usize>> = None;
        loop {
            if let Some(repartition) = input.downcast_ref::<RepartitionExec>()
                && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
            {
                input = repartition.input();
            } else if let Some(projection) = input.downcast_ref::<ProjectionExec>() {
                let below: Vec<usize> = projection
                    .expr()
                    .iter()
                    .map(|p| p.expr.downcast_ref::<Column>().map(Column::index))
                    .collect::<Option<_>>()?;
                columns = Some(match columns {
                    None => below,
                    Some(above) => above
                        .iter()
                        .map(|i| below.get(*i).copied())
                        .collect::<Option<_>>()?,
                });
                input = projection.input();
            } else {
                break;
            }
        }
        let scan = input.downcast_ref::<DataSourceExec>()?;
        let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
        let source = config.file_source().downcast_ref::<ParquetSource>()?;
        if config.limit.is_some() || config.file_groups.iter().all(|g| g.is_empty()) {
            return None;
        }
        if let Some(projection) = source.projection()
            && projection
                .iter()
                .any(|p| p.expr.downcast_ref::<Column>().is_none())
        {
            return None;
        }
        Some(CountsOverScan {
            aggregate,
            scan,
            config,
            source,
            columns,
        })
    }

    /// The scan's field behind the aggregation's input column `column`.
    pub(super) fn scan_field(&self, column: &Column) -> Option<FieldRef> {
        let index = match &self.columns {
            None => column.index(),
            Some(map) => *map.get(column.index())?,
        };
        self.scan.schema().fields().get(index).cloned()
    }

    /// The index among the scan's partition columns of `field`, if it is one.
    pub(super) fn partition_index(&self, field: &FieldRef) -> Option<usize> {
        self.config
            .table_partition_cols()
            .iter()
            .position(|f| f.name() == field.name())
    }

    /// Each aggregate's argument (a count has exactly one), in order.
    pub(super) fn count_arguments(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        self.aggregate
            .aggr_expr()
            .iter()
            .filter_map(|a| a.expressions().into_iter().next())
            .collect()
    }
}

/// True for a literal that is not null: `count(*)` is `count(1)`.
pub(super) fn is_non_null_literal(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<Literal>()
        .is_some_and(|l| !l.value().is_null())
}

/// `plan` with every node that `replace` answers for replaced, bottom up:
/// how the count rules apply themselves.
pub(super) fn replace_nodes(
    plan: Arc<dyn ExecutionPlan>,
    replace: impl Fn(&Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(match replace(&node) {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(node),
        })
    })
    .data()
}
