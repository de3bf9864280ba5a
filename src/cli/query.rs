//! `auditlake query` (one-shot SQL or a named query) and `auditlake queries`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use datafusion::common::{ParamValues, ScalarValue};

use super::{EngineArgs, QueriesArgs, QueryArgs};
use crate::engine::named::{self, describe_queries, find_named};
use crate::print_format::{OutputFormat, PrintOptions, print_stream};
use crate::statements::split_statements;

pub async fn run(args: QueryArgs) -> anyhow::Result<bool> {
    let queries = named::load(args.engine.queries.as_deref())?;
    let (sql, params) = if let Some(name) = &args.named {
        let query = find_named(&queries, name)?;
        (query.sql.clone(), Some(query.bind(&args.params)?))
    } else {
        let sql = match (&args.sql, &args.file) {
            (Some(s), _) if s == "-" => read_stdin()?,
            (Some(s), _) => s.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?,
            (None, None) => bail!("give SQL, -f FILE or --named NAME"),
        };
        // Parameters of ad-hoc SQL are text placeholders ($name).
        let params = (!args.params.is_empty()).then(|| {
            ParamValues::Map(
                args.params
                    .iter()
                    .map(|(k, v)| (k.clone(), ScalarValue::Utf8(Some(v.clone())).into()))
                    .collect(),
            )
        });
        (sql, params)
    };
    let statements = split_statements(&sql);
    if statements.is_empty() {
        bail!("no SQL statement to run");
    }

    let engine = args.engine.open(&args.lake).await?;
    if engine.is_empty() {
        bail!("{}", engine.empty_lake_message());
    }
    // A terminal gets tables fitted to its width; a file or a pipe everything.
    let options = match &args.output {
        Some(_) => PrintOptions::whole(args.format),
        None => PrintOptions::for_stdout(args.format),
    };
    if args.format == OutputFormat::Parquet && statements.len() > 1 {
        bail!("--format parquet takes a single statement");
    }
    if args.evidence.is_some() && statements.len() > 1 {
        bail!("--evidence takes a single statement");
    }
    let mut out = Output::open(args.output.as_deref(), args.format)?;
    let run = async {
        if let Some(dir) = &args.evidence {
            let batches =
                super::evidence::write(&engine, &statements[0], params.clone(), &args.params, dir)
                    .await?;
            let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
                std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty())
            });
            let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)),
            );
            let printed = print_stream(Box::pin(stream), &options, out.writer()).await?;
            return footer(&printed, out.writer());
        }
        for statement in &statements {
            let stream = engine.execute(statement, params.clone()).await?;
            let printed = print_stream(stream, &options, out.writer()).await?;
            footer(&printed, out.writer())?;
        }
        anyhow::Ok(())
    };
    match args.timeout {
        Some(seconds) => tokio::time::timeout(Duration::from_secs_f64(seconds), run)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the query ran longer than --timeout {seconds} s and was stopped: narrow it (a month, an app) or give it longer"
                )
            })??,
        None => run.await?,
    }
    out.finish()?;
    Ok(true)
}

/// Where a result goes: stdout, or a file that appears whole. The file is
/// written under a hidden name beside it and renamed over it only when
/// every statement has succeeded, so a query that fails or is stopped
/// half-way leaves the previous file, if any, as it was.
struct Output {
    writer: std::io::BufWriter<Box<dyn Write + Send>>,
    /// The file being written, and where it goes.
    pending: Option<(tempfile::TempPath, PathBuf)>,
}

impl Output {
    fn open(path: Option<&Path>, format: OutputFormat) -> anyhow::Result<Output> {
        let Some(path) = path else {
            if format.is_binary() && std::io::stdout().is_terminal() {
                bail!(
                    "refusing to write {} to a terminal: use --output FILE or redirect stdout",
                    format.name()
                );
            }
            return Ok(Output {
                writer: std::io::BufWriter::new(Box::new(std::io::stdout())),
                pending: None,
            });
        };
        let (file, temp) = super::partial::file_beside(path)?.into_parts();
        Ok(Output {
            writer: std::io::BufWriter::new(Box::new(file)),
            pending: Some((temp, path.to_path_buf())),
        })
    }

    fn writer(&mut self) -> &mut (dyn Write + Send) {
        &mut self.writer
    }

    /// Flushes the result and, for a file, puts it in place.
    fn finish(self) -> anyhow::Result<()> {
        let Output {
            mut writer,
            pending,
        } = self;
        writer.flush().context("cannot write the result")?;
        drop(writer);
        if let Some((temp, path)) = pending {
            temp.persist(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Under a table fitted to the terminal: what it does not show.
fn footer(printed: &crate::print_format::Printed, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Some(line) = printed.footer() {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `auditlake queries`: the named queries and their parameters.
pub fn list(args: QueriesArgs) -> anyhow::Result<bool> {
    let queries = named::load(args.queries.as_deref())?;
    print!("{}", describe_queries(&queries));
    Ok(true)
}

fn read_stdin() -> anyhow::Result<String> {
    let mut sql = String::new();
    std::io::stdin()
        .read_to_string(&mut sql)
        .context("cannot read SQL from stdin")?;
    Ok(sql)
}

impl EngineArgs {
    /// Opens the lake for querying.
    pub async fn open(&self, lake: &super::LakeArg) -> anyhow::Result<crate::engine::Engine> {
        let lake = crate::lake::Lake::open(&lake.lake)?;
        let engine = crate::engine::Engine::open(
            &lake,
            crate::engine::EngineOptions {
                allow_write: self.allow_write,
                memory_limit: self.memory_limit,
            },
        )
        .await?;
        crate::report::warn_if_mid_run(&lake).await;
        Ok(engine)
    }
}
