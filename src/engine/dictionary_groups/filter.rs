//! Filters on dictionary columns, answered once per dictionary value.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::table::same_buffers;

/// Whether `expr` can be evaluated on a column's distinct values in place of
/// its rows: built only of what gives one answer per value and cannot fail
/// on a value that no selected row holds (a filter's conjuncts are all
/// evaluated on every value of the dictionary, where DataFusion may
/// evaluate one only on the rows the others kept). So columns, literals,
/// comparisons and boolean logic, `IN`, `LIKE`, null tests and `TRY_CAST`;
/// not casts or functions, which may fail on a value (`CAST(action AS
/// INT)`), nor `random()` or a dynamic filter.
pub(super) fn evaluable_per_value(expr: &Arc<dyn PhysicalExpr>) -> bool {
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{
        BinaryExpr, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal, NotExpr, TryCastExpr,
    };
    let mut per_value = true;
    let _ = expr.apply(|e| {
        let known = e.downcast_ref::<Column>().is_some()
            || e.downcast_ref::<Literal>().is_some()
            || e.downcast_ref::<BinaryExpr>().is_some_and(|b| {
                matches!(
                    b.op(),
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                        | Operator::And
                        | Operator::Or
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                        | Operator::LikeMatch
                        | Operator::ILikeMatch
                        | Operator::NotLikeMatch
                        | Operator::NotILikeMatch
                )
            })
            || e.downcast_ref::<InListExpr>().is_some()
            || e.downcast_ref::<LikeExpr>().is_some()
            || e.downcast_ref::<IsNullExpr>().is_some()
            || e.downcast_ref::<IsNotNullExpr>().is_some()
            || e.downcast_ref::<NotExpr>().is_some()
            || e.downcast_ref::<TryCastExpr>().is_some();
        per_value &= known;
        Ok(if known {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    per_value
}

/// A conjunct of the scan's filter on one dictionary column.
#[derive(Clone, Debug)]
pub(super) struct CodeFilter {
    pub(super) column: String,
    /// The conjunct, its column at index 0 of a one-column batch.
    pub(super) expr: Arc<dyn PhysicalExpr>,
    /// The column's type as the conjunct was planned for (the table's).
    pub(super) data_type: DataType,
}

/// A [`CodeFilter`] and its answers for the last dictionary it saw.
pub(super) struct CodeFilterState {
    filter: CodeFilter,
    /// The last dictionary (held so that its buffers are not reused).
    last_dictionary: Option<ArrayRef>,
    /// Whether each code passes; the last entry answers for a null.
    pass: Vec<bool>,
}

impl CodeFilterState {
    pub(super) fn new(filter: CodeFilter) -> Self {
        CodeFilterState {
            filter,
            last_dictionary: None,
            pass: Vec::new(),
        }
    }

    /// Narrows `selected` to the rows of `keys` (codes of `values`) that pass.
    fn apply(&mut self, keys: &Int32Array, values: &ArrayRef, selected: &mut [bool]) -> Result<()> {
        let known = self
            .last_dictionary
            .as_ref()
            .is_some_and(|last| same_buffers(last, values));
        if !known {
            // The dictionary's values and a null, as the conjunct sees them.
            let with_null = datafusion::arrow::compute::concat(&[
                values.as_ref(),
                datafusion::arrow::array::new_null_array(values.data_type(), 1).as_ref(),
            ])?;
            let input = cast(&with_null, &self.filter.data_type)?;
            let schema = Arc::new(Schema::new(vec![Field::new(
                &self.filter.column,
                self.filter.data_type.clone(),
                true,
            )]));
            let batch = RecordBatch::try_new(schema, vec![input])?;
            let answer = self
                .filter
                .expr
                .evaluate(&batch)?
                .into_array(batch.num_rows())?;
            let answer = answer.as_boolean_opt().ok_or_else(|| {
                DataFusionError::Internal("a filter that is not a predicate".into())
            })?;
            // WHERE keeps a row only when its predicate is true, not null.
            self.pass = (0..answer.len())
                .map(|i| answer.is_valid(i) && answer.value(i))
                .collect();
            self.last_dictionary = Some(Arc::clone(values));
        }
        let pass = &self.pass;
        if keys.null_count() == 0 {
            for (selected, key) in selected.iter_mut().zip(keys.values()) {
                *selected &= pass[*key as usize];
            }
        } else {
            let null = pass.len() - 1;
            for (selected, key) in selected.iter_mut().zip(keys.iter()) {
                *selected &= pass[key.map_or(null, |k| k as usize)];
            }
        }
        Ok(())
    }
}

/// Which rows of `batch` pass every filter (None: no filter).
pub(super) fn select(
    batch: &RecordBatch,
    filters: &mut [CodeFilterState],
) -> Result<Option<Vec<bool>>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut selected = vec![true; batch.num_rows()];
    for filter in filters {
        let name = &filter.filter.column;
        let dictionary: &DictionaryArray<Int32Type> = batch
            .column_by_name(name)
            .and_then(|c| c.as_dictionary_opt())
            .ok_or_else(|| DataFusionError::Internal(format!("{name} was not read as codes")))?;
        filter.apply(dictionary.keys(), dictionary.values(), &mut selected)?;
    }
    Ok(Some(selected))
}
