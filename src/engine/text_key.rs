//! A table whose 16-byte UUID keys read as text.
//!
//! Files store event ids as 16 bytes (see [`crate::key`]); users write
//! `WHERE id = 'evt-1'` and expect the id the source wrote. The lossless
//! rendering is `coalesce(json_get_str(extra, 'id'), uuid_text(id))`: the
//! source's own text when it was not a canonical UUID, else the UUID.
//!
//! This provider applies that rendering under the scan instead of in a SQL
//! view. A view put a 20-column projection into every query's logical plan,
//! which every optimizer pass and physical rule then walked again: 0.8 ms of
//! the headline query's 6 ms. Here a query that does not read the key plans
//! as a bare scan, and one that does gets one projection over the scan.
//! Filters on the key are left to DataFusion (evaluated on the text); all
//! other filters pass through to the stored table, so pruning is unchanged.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, when};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::{col, lit};

use crate::key::{UUID_TYPE, uuid_text_udf};
use crate::table::EXTRA;

/// `inner` (a stored table) with its UUID key column shown as text.
#[derive(Debug)]
pub struct TextKeyTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    key: usize,
    extra: usize,
}

impl TextKeyTable {
    /// Wraps `inner` when it has a 16-byte key column and an `extra` column
    /// to find the source's text in; otherwise there is nothing to render.
    pub fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        let stored = inner.schema();
        let key = stored
            .fields()
            .iter()
            .position(|f| f.data_type() == &UUID_TYPE);
        let (Some(key), Ok(extra)) = (key, stored.index_of(EXTRA)) else {
            return inner;
        };
        let fields: Vec<Field> = stored
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == key {
                    // uuid_text keeps a non-null key non-null.
                    Field::new(f.name(), DataType::Utf8, f.is_nullable())
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(fields, stored.metadata().clone()));
        Arc::new(TextKeyTable {
            inner,
            schema,
            key,
            extra,
        })
    }

    fn key_name(&self) -> &str {
        self.schema.field(self.key).name()
    }

    /// True when `filter` reads the key column (which the stored table holds
    /// as bytes, so it cannot evaluate the filter).
    fn reads_key(&self, filter: &Expr) -> bool {
        filter
            .column_refs()
            .iter()
            .any(|c| c.name == self.key_name())
    }

    /// The text rendering of the key over `input`, whose schema has the
    /// stored key and `extra` columns.
    fn key_text(
        &self,
        state: &dyn Session,
        input: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let key = self.key_name();
        // coalesce(…), in the CASE form DataFusion's planner gives it.
        let source_text =
            datafusion_functions_json::udfs::json_get_str_udf().call(vec![col(EXTRA), lit(key)]);
        let rendering = when(source_text.clone().is_not_null(), source_text)
            .otherwise(uuid_text_udf().call(vec![col(key)]))?;
        let schema = DFSchema::try_from(input.schema())?;
        state.create_physical_expr(rendering, &schema)
    }
}

#[async_trait]
impl TableProvider for TextKeyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let passed: Vec<&Expr> = filters
            .iter()
            .copied()
            .filter(|f| !self.reads_key(f))
            .collect();
        let mut inner = self.inner.supports_filters_pushdown(&passed)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| {
                if self.reads_key(f) {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    inner
                        .next()
                        .unwrap_or(TableProviderFilterPushDown::Unsupported)
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(Vec::as_slice))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let filters: Vec<Expr> = args
            .filters()
            .unwrap_or(&[])
            .iter()
            .filter(|f| !self.reads_key(f))
            .cloned()
            .collect();
        let all: Vec<usize>;
        let wanted = match args.projection() {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        let limit = args.limit();
        let pass = |projection| {
            ScanArgs::default()
                .with_filters(Some(&filters))
                .with_projection(Some(projection))
                .with_limit(limit)
        };
        if !wanted.contains(&self.key) {
            return self.inner.scan_with_args(state, pass(wanted)).await;
        }
        // Read `extra` too when the query does not, and render the key.
        let mut read = wanted.to_vec();
        if !read.contains(&self.extra) {
            read.push(self.extra);
        }
        let input = self
            .inner
            .scan_with_args(state, pass(&read))
            .await?
            .into_inner();
        let key_text = self.key_text(state, &input)?;
        let input_schema = input.schema();
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = wanted
            .iter()
            .enumerate()
            .map(|(position, &index)| {
                let name = self.schema.field(index).name().clone();
                if index == self.key {
                    (key_text.clone(), name)
                } else {
                    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&name, position));
                    debug_assert_eq!(input_schema.field(position).name(), &name);
                    (column, name)
                }
            })
            .collect();
        Ok(ScanResult::new(Arc::new(ProjectionExec::try_new(
            exprs, input,
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    const UUID: &str = "0b6c1e3a-0000-4000-8000-000000000013";

    /// `t`: two events, one with a canonical UUID id, one with `evt-1`
    /// (stored as its derived UUID, the text kept in `extra`).
    fn context() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", UUID_TYPE, false),
            Field::new("n", DataType::Int64, false),
            Field::new(EXTRA, DataType::Utf8, true),
        ]));
        let ids = [crate::key::encode(UUID).0, crate::key::encode("evt-1").0];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(FixedSizeBinaryArray::try_from_iter(ids.iter()).unwrap()),
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![None, Some(r#"{"id":"evt-1"}"#)])),
            ],
        )
        .unwrap();
        let stored = Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap());
        let ctx = SessionContext::new();
        ctx.register_table("t", TextKeyTable::wrap(stored)).unwrap();
        ctx
    }

    async fn table(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn keys_read_as_the_source_wrote_them() {
        let ctx = context();
        let schema = ctx.table("t").await.unwrap().schema().as_arrow().clone();
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        assert!(!schema.field(0).is_nullable());
        // The key last, without `extra`: the scan reads `extra` anyway.
        assert_eq!(
            table(&ctx, "SELECT n, id FROM t ORDER BY n").await,
            "+---+--------------------------------------+\n\
             | n | id                                   |\n\
             +---+--------------------------------------+\n\
             | 1 | 0b6c1e3a-0000-4000-8000-000000000013 |\n\
             | 2 | evt-1                                |\n\
             +---+--------------------------------------+"
        );
        // Filters on the key run on the text; others pass through.
        assert_eq!(
            table(&ctx, "SELECT n FROM t WHERE id = 'evt-1'").await,
            "+---+\n| n |\n+---+\n| 2 |\n+---+"
        );
        assert_eq!(
            table(
                &ctx,
                &format!("SELECT extra, id FROM t WHERE id = '{UUID}' AND n = 1")
            )
            .await,
            "+-------+--------------------------------------+\n\
             | extra | id                                   |\n\
             +-------+--------------------------------------+\n\
             |       | 0b6c1e3a-0000-4000-8000-000000000013 |\n\
             +-------+--------------------------------------+"
        );
        assert_eq!(
            table(&ctx, "SELECT count(*) AS c FROM t WHERE n > 1").await,
            "+---+\n| c |\n+---+\n| 1 |\n+---+"
        );
    }
}
