//! What the engine tells about its tables beyond their schemas: what each
//! column means (for `DESCRIBE` and the shell's `.schema`) and how many rows
//! and months each holds (`.tables`).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{DescribeAlias, ObjectNamePart, Statement};
use futures::TryStreamExt;

use super::Engine;
use crate::table::{EVENTS_VIEW, describe, ident};

/// One column of a table or view.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// What the column means; empty for a view the user made.
    pub description: &'static str,
}

/// How much a table or view holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    /// Months that hold rows, and the first and last as (year, month).
    pub months: u64,
    pub first: Option<(i32, i32)>,
    pub last: Option<(i32, i32)>,
}

impl Engine {
    /// The columns of `relation` with their meaning, or `None` when there
    /// is no such table or view.
    pub async fn describe(&self, relation: &str) -> Option<Vec<ColumnInfo>> {
        let schema = self
            .ctx
            .table(relation)
            .await
            .ok()?
            .schema()
            .as_arrow()
            .clone();
        Some(self.column_infos(relation, &schema))
    }

    fn column_infos(&self, relation: &str, schema: &Schema) -> Vec<ColumnInfo> {
        let spec = self.tables.iter().find(|t| t.name == relation);
        let known = spec.is_some() || relation == EVENTS_VIEW;
        schema
            .fields()
            .iter()
            .map(|f| ColumnInfo {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                nullable: f.is_nullable(),
                description: if known { describe(spec, f.name()) } else { "" },
            })
            .collect()
    }

    /// Rows and months of every table and view, in [`Engine::relation_names`]
    /// order. Counts come from the files' footers; months from the
    /// directories.
    pub async fn summaries(&self) -> anyhow::Result<Vec<TableSummary>> {
        let mut out = Vec::new();
        for name in self.relation_names() {
            let sql = format!(
                "SELECT count(*), count(DISTINCT year * 100 + month), \
                 min(year * 100 + month), max(year * 100 + month) FROM {}",
                ident(&name)
            );
            let batches: Vec<RecordBatch> = self
                .ctx
                .sql(&sql)
                .await?
                .execute_stream()
                .await?
                .try_collect()
                .await?;
            let batch = batches
                .first()
                .ok_or_else(|| anyhow::anyhow!("no answer counting {name}"))?;
            let int = |column: usize| -> Option<i64> {
                let array = batch.column(column);
                let value =
                    datafusion::common::ScalarValue::try_from_array(array.as_ref(), 0).ok()?;
                match value.cast_to(&DataType::Int64).ok()? {
                    datafusion::common::ScalarValue::Int64(v) => v,
                    _ => None,
                }
            };
            let month = |v: Option<i64>| v.map(|v| ((v / 100) as i32, (v % 100) as i32));
            out.push(TableSummary {
                name,
                rows: int(0).unwrap_or(0) as u64,
                months: int(1).unwrap_or(0) as u64,
                first: month(int(2)),
                last: month(int(3)),
            });
        }
        Ok(out)
    }

    /// `DESCRIBE t` as DataFusion answers it (column_name, data_type,
    /// is_nullable), with what each column means as a fourth column.
    pub(super) fn describe_answer(
        &self,
        relation: Option<&str>,
        plan: &LogicalPlan,
    ) -> Option<RecordBatch> {
        let LogicalPlan::DescribeTable(describe) = plan else {
            return None;
        };
        let columns = self.column_infos(relation.unwrap_or_default(), &describe.schema);
        let text = |f: &dyn Fn(&ColumnInfo) -> String| {
            Arc::new(StringArray::from_iter_values(columns.iter().map(f)))
                as Arc<dyn datafusion::arrow::array::Array>
        };
        let schema = Schema::new(
            ["column_name", "data_type", "is_nullable", "description"]
                .map(|n| Field::new(n, DataType::Utf8, false))
                .to_vec(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                text(&|c| c.name.clone()),
                text(&|c| c.data_type.to_string()),
                text(&|c| if c.nullable { "YES" } else { "NO" }.to_string()),
                text(&|c| c.description.to_string()),
            ],
        )
        .ok()
    }
}

/// The table a `DESCRIBE name` statement names, as the planner resolves
/// it: unquoted names in lower case.
pub(super) fn described_relation(statement: &DFStatement) -> Option<String> {
    let DFStatement::Statement(statement) = statement else {
        return None;
    };
    let Statement::ExplainTable {
        describe_alias: DescribeAlias::Describe | DescribeAlias::Desc,
        table_name,
        ..
    } = statement.as_ref()
    else {
        return None;
    };
    match table_name.0.last()? {
        ObjectNamePart::Identifier(ident) if ident.quote_style.is_some() => {
            Some(ident.value.clone())
        }
        ObjectNamePart::Identifier(ident) => Some(ident.value.to_lowercase()),
        _ => None,
    }
}
