//! Result output formats, shared by `query` and `shell`.
//!
//! csv, json, ndjson and parquet are written batch by batch as the query
//! produces them, so a large result never sits in memory; table and markdown
//! need every row for column widths and are cut at `max_rows`.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{ContentArrangement, Table};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::{JsonArray, JsonFormat, LineDelimited};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
    Markdown,
    Parquet,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// Binary formats must not go to a terminal.
    pub fn is_binary(self) -> bool {
        self == OutputFormat::Parquet
    }
}

/// How many rows a result had and how many were printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printed {
    pub rows: usize,
    pub shown: usize,
}

/// Writes a result stream in `format`. `max_rows` cuts table and markdown
/// output (the remaining rows are still counted).
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    out: &mut (dyn Write + Send),
    max_rows: Option<usize>,
) -> anyhow::Result<Printed> {
    let schema = stream.schema();
    let mut printed = Printed::default();
    match format {
        OutputFormat::Table | OutputFormat::Markdown => {
            let limit = max_rows.unwrap_or(usize::MAX);
            let mut kept = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                let room = limit.saturating_sub(printed.shown);
                if room > 0 {
                    let take = room.min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    printed.shown += take;
                }
            }
            let text = if format == OutputFormat::Table {
                table_text(&schema, &kept)?
            } else {
                markdown_text(&schema, &kept)?
            };
            writeln!(out, "{text}")?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".to_string())
                .build(&mut *out);
            let mut wrote_any = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                writer.write(&batch)?;
                wrote_any = true;
            }
            if !wrote_any {
                // Still print the header of an empty result.
                writer.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            printed.shown = printed.rows;
        }
        OutputFormat::Json => {
            // An empty result is `[]` (arrow writes the brackets on finish).
            printed.rows = write_json::<JsonArray>(&mut stream, out).await?;
            writeln!(out)?;
            printed.shown = printed.rows;
        }
        OutputFormat::Ndjson => {
            printed.rows = write_json::<LineDelimited>(&mut stream, out).await?;
            printed.shown = printed.rows;
        }
        OutputFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(&mut *out, schema.clone(), None)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.close()?;
            printed.shown = printed.rows;
        }
    }
    out.flush()?;
    Ok(printed)
}

/// Streams batches as JSON (array or lines); returns the row count.
async fn write_json<F: JsonFormat>(
    stream: &mut SendableRecordBatchStream,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<usize> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, F>(out);
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    Ok(rows)
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("NULL")
}

fn table_text(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<String> {
    if batches.is_empty() {
        return Ok(pretty_format_batches_with_options(
            &[RecordBatch::new_empty(schema.clone())],
            &format_options(),
        )?
        .to_string());
    }
    Ok(pretty_format_batches_with_options(batches, &format_options())?.to_string())
}

fn markdown_text(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<String> {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let options = format_options();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string().replace('|', "\\|")),
            );
        }
    }
    Ok(table.to_string())
}
