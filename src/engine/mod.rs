//! The query engine: a DataFusion session over a lake.
//!
//! Every table found in the lake is registered as a listing table over its
//! `year=`/`month=` directories, with the schema the lake's writer uses, so
//! opening a lake lists directories but reads no Parquet footer; the tables
//! are the files as they are (lake format 1 stores what users query). A view
//! `events` unifies all sources. JSON functions (`data->>'key'`,
//! `json_get_str`, `json_contains`, …) come from `datafusion-functions-json`.
//! SQL is read-only unless the engine is opened with writes allowed.

mod bounded;
pub(crate) mod catalog;
mod compact_views;
mod counts_over_scan;
mod dictionary_groups;
mod footer_counts;
pub(crate) mod limits;
pub mod named;
mod page_index;
pub(crate) mod prepared;
pub mod progress;
pub(crate) mod pruning;
mod scan_pieces;

use std::sync::Arc;

use anyhow::{Context, bail};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::ParamValues;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::lake::Lake;
use crate::lake::snapshot::SnapshotStore;
use crate::table::{EVENTS_COLUMNS, TableSpec, ident};
use prepared::PreparedPlans;
use pruning::MonthPrunedTable;

pub use crate::table::EVENTS_VIEW;

/// The engine's catalog.
const CATALOG: &str = "auditlake";

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Allow DDL, DML and COPY (e.g. `COPY (…) TO 'file.parquet'`).
    pub allow_write: bool,
    /// Memory limit of query execution, in bytes.
    pub memory_limit: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allow_write: false,
            memory_limit: 1 << 30,
        }
    }
}

/// Files smaller than this are scanned whole by one partition rather than
/// split into byte ranges (DataFusion splits from 1 MiB). A byte range reads
/// the row groups whose middle it holds, and the lake writes row groups of
/// [`crate::lake::parquet::ROW_GROUP_ROWS`] rows (~7.5 MB of Heroku events):
/// splitting a file of one row group only adds an empty partition and a
/// merge. On a 200k-event month a full-month aggregation takes 7.0 ms
/// instead of 9.4 (the scan's batches are spread over both cores after
/// decoding instead); a 1M-event month (4 row groups) is still split.
const SPLIT_FILES_FROM_BYTES: usize = 8 * 1024 * 1024;

/// How many times [`Engine::execute`] plans a query again when a conversion
/// replaced a file it was about to read. A conversion commits a month in one
/// step and months one after another, so a second listing nearly always
/// sees a settled file; three covers a run committing several months.
const REPLANS: usize = 3;

/// A DataFusion session over one lake.
pub struct Engine {
    ctx: SessionContext,
    tables: Vec<TableSpec>,
    options: EngineOptions,
    lake: Lake,
    /// Optimized plans of the parameterised queries run in this session.
    prepared: PreparedPlans,
    /// The store the lake's files are read through, which tells when a file
    /// was replaced while a query read it.
    snapshot: Arc<SnapshotStore>,
}

impl Engine {
    /// Opens `lake`, registering its tables and views. A lake with no tables
    /// opens fine (see [`Engine::is_empty`]); a missing directory is an error.
    pub async fn open(lake: &Lake, options: EngineOptions) -> anyhow::Result<Engine> {
        if !lake.exists().await? {
            bail!("{}", empty_lake_message(lake));
        }
        lake.ensure_readable().await?;
        let tables: Vec<TableSpec> = lake
            .tables()
            .await
            .context("cannot list the lake's tables")?
            .iter()
            .map(|name| crate::source::table_spec_for(name))
            .collect();
        // No list-files cache: DataFusion's keeps a table's listing for the
        // whole session, so a shell open across a conversion would neither
        // see new months nor the replaced files' new sizes.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit)))
            .with_object_list_cache_limit(0)
            .build_arc()
            .context("cannot start the query engine")?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "lake");
        let opts = config.options_mut();
        // Files are found by listing; statistics come from each file's footer
        // when it is opened, after partition pruning.
        opts.execution.collect_statistics = false;
        // Evaluate filters while decoding, so a selective query decodes only
        // the pages and rows that can match.
        opts.execution.parquet.pushdown_filters = true;
        opts.execution.parquet.reorder_filters = true;
        opts.optimizer.repartition_file_min_size = SPLIT_FILES_FROM_BYTES;
        let footers = runtime.cache_manager.get_file_metadata_cache();
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules(&tables, footers))
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        datafusion_functions_json::register_all(&mut ctx)
            .context("cannot register the JSON functions")?;
        bounded::register(&ctx, options.memory_limit / 4);

        let snapshot = lake.register_store(&ctx);
        let mut engine = Engine {
            ctx,
            tables: Vec::new(),
            options,
            lake: lake.clone(),
            prepared: PreparedPlans::default(),
            snapshot,
        };
        for spec in tables {
            engine.register(&spec).await?;
            engine.tables.push(spec);
        }
        engine.register_events_view().await?;
        Ok(engine)
    }

    async fn register(&self, spec: &TableSpec) -> anyhow::Result<()> {
        let dir = self.lake.table_url(&spec.name);
        let url =
            ListingTableUrl::parse(&dir).with_context(|| format!("bad table location {dir}"))?;
        let listing = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![
                ("year".to_string(), DataType::Int32),
                ("month".to_string(), DataType::Int32),
            ]);
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing)
            .with_schema(read_schema(&spec.schema));
        let table = ListingTable::try_new(config)?;
        let table: Arc<dyn TableProvider> =
            Arc::new(MonthPrunedTable::new(Arc::new(table), spec.time_column));
        self.ctx.register_table(spec.name.as_str(), table)?;
        Ok(())
    }

    /// `events`: one SELECT per table, unioned, plus the partition columns.
    async fn register_events_view(&self) -> anyhow::Result<()> {
        if self.tables.is_empty() {
            return Ok(());
        }
        let selects: Vec<String> = self
            .tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT '{}' AS source, {}, year, month FROM {}",
                    t.name.replace('\'', "''"),
                    t.events_select,
                    ident(&t.name)
                )
            })
            .collect();
        let sql = format!(
            "CREATE VIEW {EVENTS_VIEW} AS {}",
            selects.join(" UNION ALL ")
        );
        self.ctx.sql(&sql).await?.collect().await?;
        Ok(())
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// True when the lake holds no table yet.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// What to tell a user whose lake is missing or empty.
    pub fn empty_lake_message(&self) -> String {
        empty_lake_message(&self.lake)
    }

    /// Names of the tables and views users can query.
    pub fn relation_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.iter().map(|t| t.name.clone()).collect();
        if !self.tables.is_empty() {
            names.push(EVENTS_VIEW.to_string());
        }
        names
    }

    /// Column names of a table or view, for completion and `.schema`.
    pub async fn columns(&self, relation: &str) -> Option<Vec<(String, DataType, bool)>> {
        let table = self.ctx.table(relation).await.ok()?;
        Some(
            table
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
                .collect(),
        )
    }

    /// Every column name of every relation (deduplicated), for completion.
    pub async fn all_column_names(&self) -> Vec<String> {
        let mut names: Vec<String> = EVENTS_COLUMNS.iter().map(|c| c.to_string()).collect();
        for spec in &self.tables {
            names.extend(spec.schema.fields().iter().map(|f| f.name().clone()));
        }
        names.extend(["year".to_string(), "month".to_string()]);
        names.sort();
        names.dedup();
        names
    }

    fn sql_options(&self) -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(self.options.allow_write)
            .with_allow_dml(self.options.allow_write)
            .with_allow_statements(true)
    }

    /// Plans `sql` (one statement), refusing writes unless allowed, and
    /// binds `params` to its `$name` placeholders. A parameterised query's
    /// optimized plan is kept for the session (see [`prepared`]); a statement
    /// that changes settings or tables forgets the kept plans.
    pub async fn sql(&self, sql: &str, params: Option<ParamValues>) -> anyhow::Result<DataFrame> {
        Ok(self.plan(sql, params).await?.0)
    }

    /// Runs `sql` (one statement) and returns its results as they come.
    ///
    /// A conversion may replace a month file between the moment a query
    /// lists it and the moment it reads it; the read then fails rather than
    /// mixing two files (see [`crate::lake::snapshot`]). A query that fails
    /// so before its first batch is planned again over the new listing, up
    /// to [`REPLANS`] times, and the user sees only the answer. Later in the
    /// stream the error reaches the user, who asked for rows as they come.
    pub async fn execute(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> anyhow::Result<SendableRecordBatchStream> {
        self.execute_watched(sql, params, &progress::PlanWatch::default())
            .await
    }

    /// As [`Engine::execute`], and puts the physical plan in `watch` as soon
    /// as it is made, so that its progress can be shown while it runs.
    pub async fn execute_watched(
        &self,
        sql: &str,
        params: Option<ParamValues>,
        watch: &progress::PlanWatch,
    ) -> anyhow::Result<SendableRecordBatchStream> {
        let mut replans = 0;
        loop {
            let replaced = self.snapshot.replacements();
            let mut is_query = false;
            let started = async {
                let (df, query) = self.plan(sql, params.clone()).await?;
                is_query = query;
                let task = Arc::new(df.task_ctx());
                let plan = df.create_physical_plan().await?;
                watch.set(plan.clone());
                let mut stream = datafusion::physical_plan::execute_stream(plan, task)?;
                let first = stream.next().await.transpose()?;
                anyhow::Ok((stream, first))
            }
            .await;
            match started {
                Ok((rest, first)) => {
                    let schema = rest.schema();
                    let batches = futures::stream::iter(first.map(Ok)).chain(rest);
                    return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)));
                }
                Err(e)
                    if is_query && replans < REPLANS && self.snapshot.replacements() > replaced =>
                {
                    replans += 1;
                    tracing::debug!("planning the query again: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Plans `sql` as [`Engine::sql`] does, and tells whether it is a query
    /// (which reads and changes nothing, so it can run again).
    async fn plan(
        &self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> anyhow::Result<(DataFrame, bool)> {
        if let Some(p) = &params
            && let Some(optimized) = self.prepared.get(sql)
            && prepared::fits(&optimized, p)
        {
            return Ok((prepared::bind(&self.ctx, optimized, p.clone())?, true));
        }
        // As `SessionContext::sql_with_options`, with a look at the plan
        // before DDL and SET statements take effect.
        limits::check_length(sql)?;
        let refused = |e| explain_error(e, self.options.allow_write);
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(refused)?;
        limits::check_nesting(&statement)?;
        let described = catalog::described_relation(&statement);
        let plan = state.statement_to_plan(statement).await.map_err(refused)?;
        self.sql_options().verify_plan(&plan).map_err(refused)?;
        if let Some(answer) = self.describe_answer(described.as_deref(), &plan) {
            return Ok((self.ctx.read_batch(answer)?, true));
        }
        let query = prepared::is_query(&plan);
        if !query {
            self.prepared.clear();
        }
        match params {
            Some(p) if query && prepared::is_deterministic(&plan) => {
                let optimized = state.optimize(&plan)?;
                if prepared::fits(&optimized, &p) {
                    self.prepared.insert(sql, optimized.clone());
                    return Ok((prepared::bind(&self.ctx, optimized, p)?, true));
                }
                Ok((DataFrame::new(state, plan).with_param_values(p)?, true))
            }
            params => {
                let df = self.ctx.execute_logical_plan(plan).await?;
                let df = match params {
                    Some(p) => df.with_param_values(p)?,
                    None => df,
                };
                Ok((df, query))
            }
        }
    }
}

/// What to tell a user whose lake is missing or empty.
fn empty_lake_message(lake: &Lake) -> String {
    format!(
        "the lake at {} holds no tables yet; convert archives into it first: \
         auditlake convert <PATH>... --lake {}",
        lake.location(),
        lake.location()
    )
}

/// DataFusion's physical optimizer rules with the engine's own among them,
/// just before `CombinePartialFinalAggregate`: distribution is settled by
/// then, and the partial aggregations they look for still stand on their
/// own (on one partition, one core, that rule merges them with the final
/// ones). Counts by partition come from the footers first; what is left of
/// counts by dictionary columns is counted on their codes. Then, after all
/// of DataFusion's rules, each full sort gets its text copied out of the
/// reader's pages as it arrives, and each scan's files are cut into pieces
/// its partitions share.
fn physical_optimizer_rules(
    tables: &[TableSpec],
    footers: Arc<datafusion::execution::cache::cache_manager::FileMetadataCache>,
) -> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    let at = rules
        .iter()
        .position(|rule| rule.name() == "CombinePartialFinalAggregate")
        .unwrap_or(rules.len());
    rules.insert(
        at,
        Arc::new(dictionary_groups::DictionaryGroups::new(tables)),
    );
    rules.insert(at, Arc::new(footer_counts::FooterCounts));
    // Before those two, which replace scans and take their readers with
    // them, and after filters are pushed into the scans.
    rules.insert(at, Arc::new(page_index::LoadPageIndex));
    // Last: the sorts are where they will run, and the scans are final.
    rules.push(Arc::new(compact_views::CompactViews));
    rules.push(Arc::new(scan_pieces::ScanPieces::new(footers)));
    rules
}

/// The engine's physical optimizer rules for a lake of no tables, in a
/// runtime of its own: for tests of where a rule runs.
#[cfg(test)]
fn default_rules()
-> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
    let runtime = datafusion::execution::runtime_env::RuntimeEnv::default();
    physical_optimizer_rules(&[], runtime.cache_manager.get_file_metadata_cache())
}

/// The schema a table is read with: text as `Utf8View`. The Parquet
/// reader then decodes strings (and dictionary pages) into views over its
/// buffers instead of copying every value, and DataFusion's filters and
/// grouping have their fastest paths for views; the files themselves hold
/// plain `STRING` columns as the lake contract says.
fn read_schema(
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> datafusion::arrow::datatypes::SchemaRef {
    crate::table::retype_columns(schema, &DataType::Utf8, &DataType::Utf8View)
}

/// The files a physical plan reads (its file scans' groups), in plan order,
/// each once: what `query --evidence` lists with their SHA-256.
pub fn scanned_files(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Vec<object_store::path::Path> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let mut files: Vec<object_store::path::Path> = Vec::new();
    let _ = plan.apply(|node| {
        let own: Vec<&object_store::path::Path> = if let Some(counts) =
            node.downcast_ref::<footer_counts::FooterCountsExec>()
        {
            counts.files().collect()
        } else if let Some(groups) = node.downcast_ref::<dictionary_groups::DictionaryGroupsExec>()
        {
            groups.files().collect()
        } else {
            Vec::new()
        };
        for file in own {
            if !files.contains(file) {
                files.push(file.clone());
            }
        }
        if let Some(exec) = node.downcast_ref::<DataSourceExec>()
            && let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>()
        {
            for group in &config.file_groups {
                for file in group.iter() {
                    if !files.contains(&file.object_meta.location) {
                        files.push(file.object_meta.location.clone());
                    }
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files
}

/// Turns DataFusion's refusal of writes into advice.
fn explain_error(e: datafusion::error::DataFusionError, allow_write: bool) -> anyhow::Error {
    let text = e.strip_backtrace();
    if !allow_write && (text.contains("DDL not supported") || text.contains("DML not supported")) {
        anyhow::anyhow!(
            "the lake is read-only: {} statements are refused (pass --allow-write to run them, e.g. for COPY … TO exports)",
            if text.contains("DDL") {
                "DDL"
            } else {
                "DML and COPY"
            }
        )
    } else {
        anyhow::anyhow!(text)
    }
}
